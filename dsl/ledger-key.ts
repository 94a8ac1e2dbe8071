// The one spelling of a resource id as a duty-ledger key. A route param is a path segment as
// the request spelt it (`42%21`, `caf%C3%A9`); the upstream behind the gateway decodes it once and
// reads one id (`42!`, `café`). History separation must key on that id, or `!` and `%21`, NFC and
// NFD, `42` and `42%20` would be two keys for one change and one person could do both steps.
//   RFC 3986 §2.1, §2.4 (percent-encoding is decoded once, as UTF-8 per §2.5 and RFC 3987 §3.2);
//   UAX #15 (NFC: canonically equivalent strings get one spelling).

/** Printable ASCII without `%` and without space: already canonical (NFC is the identity on ASCII). */
const PLAIN = /^[\x21-\x24\x26-\x7e]*$/;

/**
 * A route param value as a duty-ledger key: percent-decoded once as UTF-8, in Unicode NFC, with
 * surrounding white space (U+0020, U+00A0 and every other Unicode White_Space) removed. Case and
 * leading zeros are kept (`ABC` and `abc`, `42` and `042` stay two keys). A value that does not
 * decode (only possible outside the gateway, whose path normaliser refuses bad escapes and
 * bytes that are not UTF-8) is used as given, in NFC and trimmed.
 *
 * Merging spellings only ever adds conflicts, so an id an upstream would read as two resources
 * at worst costs a second person for a second step; splitting one resource would let one person
 * take two steps.
 *
 * @example canonicalLedgerKey("42%21")          // "42!"
 * @example canonicalLedgerKey("cafe%CC%81")     // "café" (NFC, as caf%C3%A9)
 * @example canonicalLedgerKey("42%20")          // "42"
 */
export function canonicalLedgerKey(paramValue: string): string {
  if (PLAIN.test(paramValue)) return paramValue;
  let decoded = paramValue;
  if (paramValue.includes("%")) {
    try { decoded = decodeURIComponent(paramValue); } catch { decoded = paramValue; }
  }
  return decoded.normalize("NFC").trim();
}

/**
 * The ledger key of a separation by several route params (`separate … by tenant, invoice`): each
 * value canonical as {@link canonicalLedgerKey}, written as a JSON array of strings in the order
 * the params are listed. JSON quotes and escapes each value, so no two lists of values share a key
 * (`["a,b","c"]` and `["a","b,c"]` stay apart, whatever the values hold). A single param keeps
 * its plain key, exactly as before composite keys existed, so existing ledgers keep working.
 *
 * @example compositeLedgerKey(["acme", "INV-1"])  // '["acme","INV-1"]'
 * @example compositeLedgerKey(["42%21"])          // "42!" (one param: the plain key)
 */
export function compositeLedgerKey(paramValues: readonly string[]): string {
  if (paramValues.length === 1) return canonicalLedgerKey(paramValues[0]!);
  return JSON.stringify(paramValues.map(canonicalLedgerKey));
}

/** The ledger key of one request under a separation by `params`. */
export function separationKey(params: readonly string[], values: Readonly<Record<string, string>>): string {
  if (params.length === 1) return canonicalLedgerKey(values[params[0]!] ?? "");
  return compositeLedgerKey(params.map((p) => values[p] ?? ""));
}
