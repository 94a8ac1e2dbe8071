// Runtime values of the language: parsing of ip/cidr/time/duration literals, and
// coercion of untyped input (JWT claims, JSON files) into a typed principal.
import type { CidrValue, IpValue, Principal, PrincipalSchema, Type } from "./types.ts";

function parseV4(text: string): bigint | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let n = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = (n << 8n) | BigInt(v);
  }
  return n;
}

function parseV6(text: string): bigint | null {
  let s = text;
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4) stands for the last two groups.
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".") && lastColon >= 0) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    s = s.slice(0, lastColon + 1) + ((v4 >> 16n) & 0xffffn).toString(16) + ":" + (v4 & 0xffffn).toString(16);
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const parse = (h: string) => (h === "" ? [] : h.split(":"));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const total = head.length + rest.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return null;
  const groups = [...head, ...Array(8 - total).fill("0"), ...rest];
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

function formatAddr(addr: bigint, v6: boolean): string {
  if (!v6) return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 0xffn)).join(".");
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((addr >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(":");
  return groups.slice(0, best).join(":") + "::" + groups.slice(best + bestLen).join(":");
}

/** Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes IPv4. */
export function parseIp(text: string): IpValue | null {
  const v4 = parseV4(text);
  if (v4 !== null) return { kind: "ip", v6: false, addr: v4, text: formatAddr(v4, false) };
  const t = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v6 = parseV6(t);
  if (v6 === null) return null;
  if (v6 >> 32n === 0xffffn) return { kind: "ip", v6: false, addr: v6 & 0xffffffffn, text: formatAddr(v6 & 0xffffffffn, false) };
  return { kind: "ip", v6: true, addr: v6, text: formatAddr(v6, true) };
}

/** Parses `a.b.c.d/n` or `x::/n`. Host bits must be zero. */
export function parseCidr(text: string): CidrValue | null {
  const slash = text.indexOf("/");
  if (slash < 0) return null;
  const ip = parseIp(text.slice(0, slash));
  const pfx = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(pfx)) return null;
  const prefix = Number(pfx);
  const bits = ip.v6 ? 128 : 32;
  if (prefix > bits) return null;
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((ip.addr & hostMask) !== 0n) return null;
  return { kind: "cidr", v6: ip.v6, addr: ip.addr, prefix, text: `${ip.text}/${prefix}` };
}

export function cidrContains(c: CidrValue, ip: IpValue): boolean {
  if (c.v6 !== ip.v6) return false;
  const bits = c.v6 ? 128 : 32;
  const shift = BigInt(bits - c.prefix);
  return ip.addr >> shift === c.addr >> shift;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `90s`, `15m`, `1h30m`, `7d` into milliseconds. */
export function parseDuration(text: string): number | null {
  if (!/^(\d+(ms|s|m|h|d))+$/.test(text)) return null;
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return total;
}

/** Parses an RFC 3339 date (`2026-12-31`, end of that day UTC) or date-time into epoch ms. */
export function parseTime(text: string, dateMeansEndOfDay = true): number | null {
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (date) {
    const [y, mo, d] = [Number(date[1]), Number(date[2]), Number(date[3])];
    const t = Date.UTC(y, mo - 1, d);
    const back = new Date(t);
    if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) return null;
    return dateMeansEndOfDay ? t + 86_400_000 - 1 : t;
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return null;
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : null;
}

export function typeToString(t: Type): string {
  switch (t.kind) {
    case "set": return `set<${typeToString(t.of)}>`;
    case "enum": return t.name;
    default: return t.kind;
  }
}

export type CoerceResult<T> = { ok: true; value: T } | { ok: false; message: string };

/** Coerces one untyped input value (JSON / claim) into the runtime value of `type`. */
export function coerceValue(type: Type, raw: unknown): CoerceResult<unknown> {
  const bad = (): CoerceResult<unknown> => ({ ok: false, message: `expected ${typeToString(type)}, got ${describe(raw)}` });
  switch (type.kind) {
    case "string": return typeof raw === "string" ? { ok: true, value: raw } : bad();
    case "int": return typeof raw === "number" && Number.isSafeInteger(raw) ? { ok: true, value: raw } : bad();
    case "bool": return typeof raw === "boolean" ? { ok: true, value: raw } : bad();
    case "ip": { const v = typeof raw === "string" ? parseIp(raw) : null; return v ? { ok: true, value: v } : bad(); }
    case "cidr": { const v = typeof raw === "string" ? parseCidr(raw) : null; return v ? { ok: true, value: v } : bad(); }
    case "time": {
      // Numbers are seconds since the epoch (as JWT NumericDate); strings RFC 3339; a Date is a
      // TOML date-time (a policy test), read through its ISO text, which keeps what TOML wrote:
      // a local date-time or time of day has no offset there, and is refused like the string.
      if (typeof raw === "number" && Number.isFinite(raw)) return { ok: true, value: raw * 1000 };
      const text = raw instanceof Date ? (Number.isNaN(raw.getTime()) ? null : raw.toISOString()) : raw;
      const v = typeof text === "string" ? parseTime(text, false) : null;
      if (v !== null) return { ok: true, value: v };
      if (typeof text === "string" && /^(\d{4}-\d{2}-\d{2}T)?\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)) {
        return { ok: false, message: `expected time, got \`${text}\` without an offset (add \`Z\` for UTC, or \`+02:00\`)` };
      }
      return bad();
    }
    case "duration": {
      if (typeof raw === "number" && Number.isFinite(raw) && raw >= 0) return { ok: true, value: raw * 1000 };
      const v = typeof raw === "string" ? parseDuration(raw) : null;
      return v !== null ? { ok: true, value: v } : bad();
    }
    case "enum":
      if (typeof raw !== "string") return bad();
      return type.values.includes(raw) ? { ok: true, value: raw } : { ok: false, message: `\`${raw}\` is not a ${type.name} (one of ${type.values.join(", ")})` };
    case "set": {
      // A single string where a set of strings/enums is expected is accepted as a one-element set
      // (many IdPs emit a single role as a string); a space-separated string is not split.
      const items = Array.isArray(raw) ? raw : raw instanceof Set ? [...raw] : typeof raw === "string" ? [raw] : null;
      if (!items) return bad();
      const out = new Set<unknown>();
      for (const item of items) {
        const r = coerceValue(type.of, item);
        if (!r.ok) return { ok: false, message: `element: ${r.message}` };
        const v = r.value;
        out.add(typeof v === "object" && v !== null && "text" in v ? (v as IpValue).text : v);
      }
      return { ok: true, value: out };
    }
    case "any": return { ok: true, value: raw };
  }
}

function describe(raw: unknown): string {
  if (raw === null) return "null";
  if (Array.isArray(raw)) return "array";
  if (typeof raw === "string") return `string \`${raw.length > 40 ? raw.slice(0, 40) + "…" : raw}\``;
  return typeof raw;
}

export type PrincipalResult =
  | { ok: true; principal: Principal }
  | { ok: false; code: "PRINCIPAL_MISSING_ATTRIBUTE" | "PRINCIPAL_BAD_ATTRIBUTE" | "PRINCIPAL_UNKNOWN_ATTRIBUTE"; attribute: string; message: string };

/**
 * Coerces untyped attributes (mapped JWT claims, a certificate mapping, a JSON file) into a typed
 * principal of `schema`. Every schema attribute must be present with the right type; a missing or
 * mistyped attribute is an error, never a silent default. Unknown attributes are errors too.
 *
 * @example
 * coercePrincipal(schema, { sub: "alice", roles: ["developer"], mfa: true, team: "core" })
 */
export function coercePrincipal(schema: PrincipalSchema, raw: Readonly<Record<string, unknown>>): PrincipalResult {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(raw)) {
    if (!(name in schema)) return { ok: false, code: "PRINCIPAL_UNKNOWN_ATTRIBUTE", attribute: name, message: `principal has no attribute \`${name}\`` };
  }
  for (const [name, type] of Object.entries(schema)) {
    if (!(name in raw) || raw[name] === undefined) {
      if (type.optional) continue;
      return { ok: false, code: "PRINCIPAL_MISSING_ATTRIBUTE", attribute: name, message: `missing principal attribute \`${name}\` (${typeToString(type)})` };
    }
    const r = coerceValue(type, raw[name]);
    if (!r.ok) return { ok: false, code: "PRINCIPAL_BAD_ATTRIBUTE", attribute: name, message: `principal attribute \`${name}\`: ${r.message}` };
    out[name] = r.value;
  }
  return { ok: true, principal: out as unknown as Principal };
}
