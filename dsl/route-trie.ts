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
 */
interface RouteNode {
  literal: Map<string, RouteNode> | null;
  /** The literal children again as parallel arrays: for a few children a scan of `===` compares
   * (length first) is cheaper than hashing a freshly split segment for the Map lookup. */
  texts: string[];
  lengths: number[];
  nodes: RouteNode[];
  param: RouteNode | null;
  /** Route whose pattern ends here. */
  end: RouteEntry | null;
  /** Route whose pattern ends here with `*` (matches zero or more further segments). */
  wildcard: RouteEntry | null;
}

/** A duty as the trie returns it: its param names, and for a duty without params one frozen match. */
export interface RouteEntry {
  duty: CheckedDuty;
  names: readonly string[];
  fixed: RouteMatch | null;
}

/** Up to this many literal children are scanned; more are looked up in the Map. */
const SCAN_LIMIT = 16;

function newNode(): RouteNode {
  return { literal: null, texts: [], lengths: [], nodes: [], param: null, end: null, wildcard: null };
}

export interface RouteTrie {
  match(method: string, path: string): RouteMatch | null;
  /** The route of a request without building its params; `paramsOf` builds them until the next lookup. */
  lookup(method: string, path: string): RouteEntry | null;
  paramsOf(entry: RouteEntry): Readonly<Record<string, string>>;
}

/** Adds one duty's route under one method. */
function insertRoute(roots: Map<string, RouteNode>, method: string, d: CheckedDuty, entry: RouteEntry): void {
  let node = roots.get(method);
  if (!node) roots.set(method, (node = newNode()));
  for (const seg of d.segments) {
    if (seg.kind === "literal") {
      node.literal ??= new Map();
      let next = node.literal.get(seg.text);
      if (!next) {
        node.literal.set(seg.text, (next = newNode()));
        node.texts.push(seg.text);
        node.lengths.push(seg.text.length);
        node.nodes.push(next);
      }
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

export function buildRouteTrie(duties: readonly CheckedDuty[]): RouteTrie {
  const roots = new Map<string, RouteNode>();
  const noParams: Readonly<Record<string, string>> = Object.freeze({});
  for (const d of duties) {
    // Param names may differ between routes through one node; each route keeps its own names in
    // its entry, so the trie only records the position.
    const entry: RouteEntry = { duty: d, names: d.params, fixed: d.params.length === 0 ? Object.freeze({ duty: d.name, params: noParams }) : null };
    for (const method of d.methods) insertRoute(roots, method, d, entry);
  }

  // The path is walked in place, without splitting it: a segment is path[pos, end) where `end` is
  // the next "/" (or the end of the path); literals are compared where they stand and params are
  // recorded as offsets, so that routing allocates nothing. pos > path.length: no segment left.
  // Matching is synchronous, so one scratch array of offsets serves every call.
  const captured: number[] = [];
  let capturedPath = "";
  const walk = (node: RouteNode, path: string, pos: number): RouteEntry | null => {
    if (pos > path.length) return node.end ?? node.wildcard;
    let end = path.indexOf("/", pos);
    if (end < 0) end = path.length;
    const len = end - pos;
    if (len > 0) {
      if (node.literal !== null) {
        let lit: RouteNode | undefined;
        const texts = node.texts;
        if (texts.length <= SCAN_LIMIT) {
          const lengths = node.lengths;
          for (let k = 0; k < texts.length; k++) if (lengths[k] === len && path.startsWith(texts[k]!, pos)) { lit = node.nodes[k]; break; }
        } else lit = node.literal.get(path.slice(pos, end));
        if (lit !== undefined) {
          const r = walk(lit, path, end + 1);
          if (r !== null) return r;
        }
      }
      if (node.param !== null) {
        captured.push(pos, end);
        const r = walk(node.param, path, end + 1);
        if (r !== null) return r;
        captured.length -= 2;
      }
    }
    return node.wildcard;
  };

  const lookup = (method: string, path: string): RouteEntry | null => {
    const root = roots.get(method);
    if (root === undefined) return null;
    captured.length = 0;
    capturedPath = path;
    // Segments start after the first character ("/" has none; an empty path has one empty segment).
    if (path === "/") return root.end ?? root.wildcard;
    if (path === "") return root.wildcard;
    return walk(root, path, 1);
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
    paramsOf,
    match(method, path) {
      const entry = lookup(method, path);
      if (entry === null) return null;
      return entry.fixed ?? { duty: entry.duty.name, params: paramsOf(entry) };
    },
  };
}
