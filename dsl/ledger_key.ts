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
