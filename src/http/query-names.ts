// Query parameters as the frameworks behind the gateway read them. A framework decides on the
// decoded and mangled name, not on the bytes sent: `_me%74hod`, `.method` and `_method[]` are all
// `_method` to one of them, and `?all=0&all=1` or `?all[]=1` is `all` read last or as an array.
// The gateway judges the request by the names an upstream may read, so it reads them the same ways.
//   WHATWG URL §5.1 (application/x-www-form-urlencoded parsing: `&`, `+` as space, percent-decoding);
//   PHP main/php_variables.c (php_register_variable_ex: leading spaces dropped, ` ` and `.` as `_`,
//   `x[...]` an array, an unmatched `[` as `_`, the name read as a C string up to NUL);
//   Rack 2 Utils.parse_nested_query (`&` and `;` separate, leading brackets skipped, `x[...]` nested);
//   Python's parse_qsl before 3.9.2 (`;` separates too).

/** One parameter: its name percent-decoded (`+` as space), its raw value as sent. */
export interface QueryParameter {
  name: string;
  rawValue: string;
}

const utf8 = new TextDecoder("utf-8");
const utf8Encoder = new TextEncoder();

/** application/x-www-form-urlencoded decoding of one name: `+` is a space, bad escapes stay as sent. */
function decodeFormComponent(text: string): string {
  const spaced = text.includes("+") ? text.replaceAll("+", " ") : text;
  if (!spaced.includes("%")) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    // Invalid escapes or bytes that are not UTF-8: decode byte-wise as WHATWG does (U+FFFD for bad UTF-8).
    const bytes: number[] = [];
    for (let i = 0; i < spaced.length; i++) {
      const c = spaced.charCodeAt(i);
      const hex = c === 37 ? spaced.slice(i + 1, i + 3) : "";
      if (hex.length === 2 && /^[0-9A-Fa-f]{2}$/.test(hex)) { bytes.push(parseInt(hex, 16)); i += 2; continue; }
      if (c < 0x80) bytes.push(c);
      else for (const b of utf8Encoder.encode(spaced[i]!)) bytes.push(b);
    }
    return utf8.decode(new Uint8Array(bytes));
  }
}

/**
 * The parameters of a query (without `?`), split at `&` — or at `&` and `;` when `semicolons`,
 * as Rack 2 and older Python split — in order, repeats kept.
 *
 * @example splitQuery("a=1;_me%74hod=PUT", true) // [{ name: "a", rawValue: "1" }, { name: "_method", rawValue: "PUT" }]
 */
export function splitQuery(query: string, semicolons: boolean): QueryParameter[] {
  const out: QueryParameter[] = [];
  if (query === "") return out;
  for (const part of query.split(semicolons ? /[&;]/ : "&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    out.push({ name: decodeFormComponent(eq < 0 ? part : part.slice(0, eq)), rawValue: eq < 0 ? "" : part.slice(eq + 1) });
  }
  return out;
}

/** PHP's name for a decoded parameter name (after its leading spaces were handled). */
function phpName(name: string): string {
  let out = "";
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c === "[") {
      // `x[...]` is array `x`; an unmatched `[` becomes `_`, and so does every later ` `, `.` or `[`.
      if (name.indexOf("]", i + 1) >= 0) return out;
      return out + "_" + name.slice(i + 1).replace(/[ .[]/g, "_");
    }
    out += c === " " || c === "." ? "_" : c;
  }
  return out;
}

/** Rack's (and Rails') name: leading brackets skipped, `x[...]` and `x]` nest under `x`. */
function bracketName(name: string): string {
  const m = /^[[\]]*([^[\]]*)/.exec(name)!;
  return m[1]!;
}

/**
 * Every name a framework may file a decoded parameter name under, lower-cased (ASP.NET reads
 * names case-insensitively): the name itself, PHP's mangling (with a leading space dropped, as PHP
 * does, and kept as `_`, the stricter reading), and the bracket-nesting frameworks' base name.
 * Comparing these, not the bytes, is what keeps a spelling from meaning one thing to the gateway
 * and another to the upstream.
 *
 * @example queryNameReadings(".method")   // [".method", "_method"]
 * @example queryNameReadings("all[]")     // ["all[]", "all"]
 * @example queryNameReadings(" method")   // [" method", "method", "_method"]
 */
export function queryNameReadings(decodedName: string): string[] {
  const nul = decodedName.indexOf("\0");
  const name = (nul >= 0 ? decodedName.slice(0, nul) : decodedName).toLowerCase();
  const readings = [name];
  const add = (reading: string) => { if (!readings.includes(reading)) readings.push(reading); };
  if (nul >= 0) add(decodedName.toLowerCase());
  add(phpName(name.replace(/^ +/, "")));
  add(phpName(name));
  add(bracketName(name));
  return readings;
}

/** Query parameters that frameworks (Symfony, Laravel, Rack, Express's method-override) read as the method. */
const METHOD_OVERRIDE_NAMES: ReadonlySet<string> = new Set(["_method"]);

/**
 * The first parameter (decoded name, as sent) that some framework reads as a method override, or
 * null. Split at `&` and `;`, which finds every name either split finds.
 *
 * @example methodOverrideParameter("a=1&_me%74hod=PUT") // "_method"
 * @example methodOverrideParameter("method=card")       // null
 */
export function methodOverrideParameter(query: string): string | null {
  // Most queries name no override in any spelling: no escape, and no "method" in the bytes.
  if (query === "" || (!query.includes("%") && !/method/i.test(query))) return null;
  for (const p of splitQuery(query, true)) {
    for (const reading of queryNameReadings(p.name)) if (METHOD_OVERRIDE_NAMES.has(reading)) return p.name;
  }
  return null;
}

/** Why a query parameter a policy reads has no one value every framework agrees on. */
export interface AmbiguousQueryParameter {
  /** The name the policy reads. */
  name: string;
  detail: string;
}

function readsAs(name: string, readNameKeys: readonly string[]): boolean {
  for (const reading of queryNameReadings(name)) if (readNameKeys.includes(reading)) return true;
  return false;
}

/**
 * The first of `readNames` (query names a policy's conditions read) that the query does not give
 * exactly one value that every framework reads alike, or null. The policy reads one value per
 * name; frameworks read the last of repeats (PHP, Rails), all of them (Express, Go, Spring), or an
 * array for `name[]`. So a read name may appear at most once under any reading of any name, spelt
 * exactly as the policy spells it (after percent-decoding), and the `&` and `&`+`;` splits must
 * agree on its value.
 *
 * @example ambiguousQueryParameter("all=0&all=1", ["all"]) // { name: "all", detail: "…appears 2 times…" }
 * @example ambiguousQueryParameter("all=0&x=1&x=2", ["all"]) // null
 */
export function ambiguousQueryParameter(query: string, readNames: readonly string[]): AmbiguousQueryParameter | null {
  if (query === "" || readNames.length === 0) return null;
  const byAmpersand = splitQuery(query, false);
  const bySemicolon = query.includes(";") ? splitQuery(query, true) : byAmpersand;
  for (const name of readNames) {
    const keys = queryNameReadings(name);
    const found = byAmpersand.filter((p) => readsAs(p.name, keys));
    const respelt = found.find((p) => p.name !== name);
    if (respelt !== undefined) {
      return { name, detail: `the query parameter \`${respelt.name}\` is read as \`${name}\` by some frameworks, and the policy reads \`${name}\`: send it once, spelt \`${name}\`` };
    }
    if (found.length > 1) {
      return { name, detail: `the query parameter \`${name}\` appears ${found.length} times; the policy reads it, and frameworks read the first, the last or all of them: send it once` };
    }
    if (bySemicolon !== byAmpersand) {
      const split = bySemicolon.filter((p) => readsAs(p.name, keys));
      if (split.length !== found.length || split.some((p, i) => p.name !== name || p.rawValue !== found[i]!.rawValue)) {
        return { name, detail: `the query parameter \`${name}\` reads otherwise where \`;\` separates parameters (Rack 2, older Python): send \`;\` in data as \`%3B\`` };
      }
    }
  }
  return null;
}
