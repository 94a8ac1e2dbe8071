// The compiled router: one segment trie per channel and method, mapping a normalised path to its
// duty and route params without allocating (the params object is built only when asked for).
import type { CheckedDuty } from "./typed-ast.ts";
import type { RouteMatch } from "./types.ts";

/**
 * A route trie per method: one node per path segment, children by literal text, then one param
 * child, then a trailing wildcard. Matching walks the path once (cost grows with the path's
 * length, not with the number of routes, unlike a combined regular expression) and tries
 * literal before param before wildcard, with backtracking: the first match found is the most
 * specific route, exactly the order `compareSpecificity` defines (the reference interpreter's).
 *
 * The trie is built as objects (`BuildNode`), then flattened into typed arrays (`FlatTrie`) for
 * matching: a node is four adjacent ints, and a literal child is found in one open-addressing
 * hash table keyed by (parent node, hash of the segment), its text checked against one string
 * that holds every literal. With thousands of routes, consecutive requests take different paths
 * through the trie; this layout reads a few cache lines per segment, where per-node Maps, arrays
 * and key strings would each be a likely cache miss.
 */
interface BuildNode {
  literal: Map<string, BuildNode>;
  param: BuildNode | null;
  /** Route whose pattern ends here. */
  end: RouteEntry | null;
  /** Route whose pattern ends here with `*` (matches zero or more further segments). */
  wildcard: RouteEntry | null;
}

/** A duty as the trie returns it: its param names, and for a duty without params one frozen match. */
export interface RouteEntry {
  duty: CheckedDuty;
  /** The duty's id given to buildRouteTrie (by default its position in the list). */
  id: number;
  names: readonly string[];
  fixed: RouteMatch | null;
}

export interface RouteTrie {
  match(method: string, path: string): RouteMatch | null;
  /** The route of a request without building its params; `paramsOf` builds them until the next lookup. */
  lookup(method: string, path: string): RouteEntry | null;
  paramsOf(entry: RouteEntry): Readonly<Record<string, string>>;
  /**
   * The id (as given to buildRouteTrie) of the route of a request, or -1, without touching its
   * entry; `lastParams` builds the params of the last lookup's route until the next lookup.
   */
  lookupId(method: string, path: string): number;
  lastParams(): Readonly<Record<string, string>>;
}

const newNode = (): BuildNode => ({ literal: new Map(), param: null, end: null, wildcard: null });

/** Adds one duty's route under one method. */
function insertRoute(roots: Map<string, BuildNode>, method: string, d: CheckedDuty, entry: RouteEntry): void {
  let node: BuildNode = roots.get(method) ?? newNode();
  roots.set(method, node);
  for (const seg of d.segments) {
    if (seg.kind === "literal") {
      let next: BuildNode | undefined = node.literal.get(seg.text);
      if (!next) node.literal.set(seg.text, (next = newNode()));
      node = next;
    } else if (seg.kind === "param") {
      node.param ??= newNode();
      node = node.param;
    } else {
      node.wildcard ??= entry;
      return;
    }
  }
  if (!node.end) node.end = entry;
}

/** FNV-1a over UTF-16 code units; `segmentHash` of a literal equals the walk's hash of that segment. */
const FNV_OFFSET = 0x811c9dc5 | 0, FNV_PRIME = 0x01000193;
function segmentHash(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  return h;
}
const slotOf = (parent: number, hash: number, mask: number) => (hash ^ Math.imul(parent, 0x9e3779b1)) & mask;

// A node record, NODE_WIDTH ints: its id (the hash table's key with a segment), the record offset
// of its param child, its number of literal children, the entry indexes of the routes ending
// there (END) or there with `*` (WILDCARD), and the same routes' ids two fields further on
// (TO_ID), read without touching the entries; -1: none.
const NODE_WIDTH = 7, ID = 0, PARAM = 1, LITERALS = 2, END = 3, WILDCARD = 4, TO_ID = 2;
// A hash table slot, SLOT_WIDTH ints (one 64-byte cache line): the parent's id (-1: empty slot),
// the segment's hash and length, where its text is in `texts` when longer than INLINE_CHARS, the
// text inline (two UTF-16 code units per int) when not, then the child's node record, so that
// following a literal edge reads one line.
const SLOT_WIDTH = 16, PARENT = 0, HASH = 1, LENGTH = 2, TEXT_AT = 3, INLINE = 4, INLINE_CHARS = 8, CHILD = 8;

interface FlatTrie {
  /** Node records of roots and param children, then the hash table of literal children. */
  trie: Int32Array;
  slotsAt: number;
  slotMask: number;
  /** The text of every literal longer than INLINE_CHARS, one after another. */
  texts: string;
  entries: RouteEntry[];
  /** Root node record offset per method. */
  roots: Map<string, number>;
}

function flatten(buildRoots: Map<string, BuildNode>): FlatTrie {
  const ids = new Map<BuildNode, number>();
  const order: BuildNode[] = [];
  const literalOf = new Map<BuildNode, { parent: BuildNode; text: string }>();
  const visit = (n: BuildNode) => {
    ids.set(n, order.length);
    order.push(n);
    for (const [text, child] of n.literal) { literalOf.set(child, { parent: n, text }); visit(child); }
    if (n.param) visit(n.param);
  };
  for (const root of buildRoots.values()) visit(root);
  // Where each node's record goes: its hash table slot for a literal child, else the first region.
  const recordAt = new Map<BuildNode, number>();
  let plain = 0;
  for (const n of order) if (!literalOf.has(n)) recordAt.set(n, (plain++) * NODE_WIDTH);
  const slotsAt = Math.ceil((plain * NODE_WIDTH) / SLOT_WIDTH) * SLOT_WIDTH;
  let size = 8;
  while (size < literalOf.size * 2) size *= 2;
  const trie = new Int32Array(slotsAt + size * SLOT_WIDTH).fill(-1);
  const textParts: string[] = [];
  let textLength = 0;
  for (const [child, { parent, text }] of literalOf) {
    const hash = segmentHash(text), parentId = ids.get(parent)!;
    let slot = slotOf(parentId, hash, size - 1);
    while (trie[slotsAt + slot * SLOT_WIDTH + PARENT] !== -1) slot = (slot + 1) & (size - 1);
    const at = slotsAt + slot * SLOT_WIDTH;
    trie[at + PARENT] = parentId;
    trie[at + HASH] = hash;
    trie[at + LENGTH] = text.length;
    if (text.length > INLINE_CHARS) {
      trie[at + TEXT_AT] = textLength;
      textParts.push(text);
      textLength += text.length;
    } else {
      for (let k = 0; k < INLINE_CHARS / 2; k++) trie[at + INLINE + k] = (text.charCodeAt(2 * k) || 0) | ((text.charCodeAt(2 * k + 1) || 0) << 16);
    }
    recordAt.set(child, at + CHILD);
  }
  const entries: RouteEntry[] = [];
  const entryIndex = new Map<RouteEntry, number>();
  const entryOf = (e: RouteEntry | null): number => {
    if (e === null) return -1;
    let k = entryIndex.get(e);
    if (k === undefined) { entryIndex.set(e, (k = entries.length)); entries.push(e); }
    return k;
  };
  for (const n of order) {
    const at = recordAt.get(n)!;
    trie[at + ID] = ids.get(n)!;
    trie[at + PARAM] = n.param ? recordAt.get(n.param)! : -1;
    trie[at + END] = entryOf(n.end);
    trie[at + WILDCARD] = entryOf(n.wildcard);
    trie[at + END + TO_ID] = n.end ? n.end.id : -1;
    trie[at + WILDCARD + TO_ID] = n.wildcard ? n.wildcard.id : -1;
    trie[at + LITERALS] = n.literal.size;
  }
  const roots = new Map<string, number>();
  for (const [method, root] of buildRoots) roots.set(method, recordAt.get(root)!);
  return { trie, slotsAt, slotMask: size - 1, texts: textParts.join(""), entries, roots };
}

export function buildRouteTrie(duties: readonly CheckedDuty[], ids?: readonly number[]): RouteTrie {
  const buildRoots = new Map<string, BuildNode>();
  const noParams: Readonly<Record<string, string>> = Object.freeze({});
  for (const [i, d] of duties.entries()) {
    // Param names may differ between routes through one node; each route keeps its own names in
    // its entry, so the trie only records the position.
    const entry: RouteEntry = { duty: d, id: ids?.[i] ?? i, names: d.params, fixed: d.params.length === 0 ? Object.freeze({ duty: d.name, params: noParams }) : null };
    for (const method of d.methods) insertRoute(buildRoots, method, d, entry);
  }
  const { trie, slotsAt, slotMask, texts, entries, roots } = flatten(buildRoots);

  /** The record offset of the literal child of node `id` for path[pos, end) (its hash given), or -1. */
  const literalChild = (id: number, hash: number, path: string, pos: number, end: number): number => {
    const len = end - pos;
    for (let slot = slotOf(id, hash, slotMask); ; slot = (slot + 1) & slotMask) {
      const at = slotsAt + slot * SLOT_WIDTH;
      const parent = trie[at + PARENT]!;
      if (parent === -1) return -1;
      if (parent !== id || trie[at + HASH] !== hash || trie[at + LENGTH] !== len) continue;
      let k = 0;
      if (len > INLINE_CHARS) {
        const t = trie[at + TEXT_AT]!;
        while (k < len && texts.charCodeAt(t + k) === path.charCodeAt(pos + k)) k++;
      } else {
        while (k < len && ((trie[at + INLINE + (k >> 1)]! >>> ((k & 1) << 4)) & 0xffff) === path.charCodeAt(pos + k)) k++;
      }
      if (k === len) return at + CHILD;
    }
  };

  // The path is walked in place, without splitting it: a segment is path[pos, end) where `end` is
  // the next "/" (or the end of the path); literals are compared where they stand and params are
  // recorded as offsets, so that routing allocates nothing. pos > path.length: no segment left.
  // Matching is synchronous, so one scratch array of offsets serves every call. `at` is a node
  // record's offset; returns the offset of its END or WILDCARD field that matched, or -1.
  const captured: number[] = [];
  let capturedPath = "";
  const walk = (at: number, path: string, pos: number): number => {
    if (pos > path.length) return trie[at + END] !== -1 ? at + END : trie[at + WILDCARD] !== -1 ? at + WILDCARD : -1;
    let end = pos;
    if (trie[at + LITERALS]! > 0) {
      let hash = FNV_OFFSET;
      for (let c: number; end < path.length && (c = path.charCodeAt(end)) !== 47; end++) hash = Math.imul(hash ^ c, FNV_PRIME);
      if (end > pos) {
        const lit = literalChild(trie[at + ID]!, hash, path, pos, end);
        if (lit !== -1) {
          const r = walk(lit, path, end + 1);
          if (r !== -1) return r;
        }
      }
    } else {
      end = path.indexOf("/", pos);
      if (end < 0) end = path.length;
    }
    const param = trie[at + PARAM]!;
    if (end > pos && param !== -1) {
      captured.push(pos, end);
      const r = walk(param, path, end + 1);
      if (r !== -1) return r;
      captured.length -= 2;
    }
    return trie[at + WILDCARD] !== -1 ? at + WILDCARD : -1;
  };

  /** The offset of the END or WILDCARD field of a request's route, or -1. */
  const lookupField = (method: string, path: string): number => {
    const root = roots.get(method);
    if (root === undefined) return -1;
    captured.length = 0;
    capturedPath = path;
    // Segments start after the first character ("/" has none; an empty path has one empty segment).
    if (path === "/") return trie[root + END] !== -1 ? root + END : trie[root + WILDCARD] !== -1 ? root + WILDCARD : -1;
    if (path === "") return trie[root + WILDCARD] !== -1 ? root + WILDCARD : -1;
    return walk(root, path, 1);
  };
  let lastEntry = -1;
  const lookup = (method: string, path: string): RouteEntry | null => {
    const f = lookupField(method, path);
    lastEntry = f === -1 ? -1 : trie[f]!;
    return f === -1 ? null : entries[lastEntry]!;
  };
  const paramsOf = (entry: RouteEntry): Readonly<Record<string, string>> => {
    if (entry.fixed !== null) return noParams;
    const params: Record<string, string> = {};
    // A wildcard match may have captured params of a deeper route it backtracked from; the
    // duty's own params are the first ones captured on its path.
    for (let k = 0; k < entry.names.length; k++) params[entry.names[k]!] = capturedPath.slice(captured[2 * k]!, captured[2 * k + 1]!);
    return params;
  };
  return {
    lookup,
    lookupId(method, path) {
      const f = lookupField(method, path);
      if (f === -1) return -1;
      lastEntry = trie[f]!;
      return trie[f + TO_ID]!;
    },
    lastParams: () => paramsOf(entries[lastEntry]!),
    paramsOf,
    match(method, path) {
      const entry = lookup(method, path);
      if (entry === null) return null;
      return entry.fixed ?? { duty: entry.duty.name, params: paramsOf(entry) };
    },
  };
}
