// Client certificates → identity. The identity of a certificate is its SPIFFE ID (the URI SAN
// `spiffe://…`, https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md §2) when it has
// one, else its subject CN; the listener's `identities` table maps it to principal attributes.
import type { TLSSocket, DetailedPeerCertificate, PeerCertificate } from "node:tls";
import type { CertificateMapping } from "../config/mod.ts";
import type { PeerCertificateInfo } from "./types.ts";

/** Splits node's `subjectaltname` (`DNS:a, URI:spiffe://x, IP Address:1.2.3.4`); values with commas come quoted. */
export function parseSubjectAltName(text: string | undefined): { uri: string[]; dns: string[] } {
  const out = { uri: [] as string[], dns: [] as string[] };
  if (!text) return out;
  const entry = /(DNS|URI|IP Address|email|DirName|othername|Registered ID):("(?:[^"\\]|\\.)*"|[^,]*)(?:,\s*|$)/g;
  for (const m of text.matchAll(entry)) {
    let value = m[2]!;
    if (value.startsWith('"')) {
      try { value = JSON.parse(value) as string; } catch { value = value.slice(1, -1); }
    }
    if (m[1] === "URI") out.uri.push(value);
    else if (m[1] === "DNS") out.dns.push(value);
  }
  return out;
}

function firstValue(value: string | string[] | undefined): string | null {
  if (Array.isArray(value)) return value[0] ?? null;
  return value ?? null;
}

function isoDate(text: string | undefined): string {
  const t = text ? Date.parse(text) : NaN;
  return Number.isFinite(t) ? new Date(t).toISOString() : "";
}

/** The client certificate a TLS socket presented, or null when none was presented. */
export function peerCertificateOf(socket: TLSSocket): PeerCertificateInfo | null {
  let peer: PeerCertificate | DetailedPeerCertificate | undefined;
  try {
    peer = socket.getPeerCertificate(false);
  } catch {
    return null;
  }
  if (!peer || Object.keys(peer).length === 0 || !peer.fingerprint256) return null;
  const sans = parseSubjectAltName(peer.subjectaltname);
  const authorizationError = socket.authorizationError;
  return {
    subjectCN: firstValue(peer.subject?.CN),
    uriSans: sans.uri,
    dnsSans: sans.dns,
    issuerCN: firstValue(peer.issuer?.CN),
    fingerprint256: peer.fingerprint256,
    serialNumber: peer.serialNumber ?? "",
    validFrom: isoDate(peer.valid_from),
    validTo: isoDate(peer.valid_to),
    authorized: socket.authorized === true,
    authorizationError: authorizationError ? String(authorizationError) : null,
  };
}

export type CertificatePrincipalResult =
  | { ok: true; sub: string; attributes: Readonly<Record<string, unknown>> }
  | { ok: false; code: "MTLS_NOT_AUTHORIZED" | "MTLS_NO_IDENTITY" | "MTLS_AMBIGUOUS_IDENTITY" | "MTLS_UNKNOWN_IDENTITY"; message: string };

/**
 * The principal `sub` and attributes of a client certificate: `sub` is the SPIFFE ID if the
 * certificate has one, else the subject CN; attributes come from `mapping.identities[sub]`.
 * A certificate that did not verify against the listener's CA never yields an identity.
 *
 * @example
 * const r = principalAttributesFromCertificate(info.peerCertificate, config.admin.certificateMapping);
 * if (r.ok) coercePrincipal(schema, { ...r.attributes, sub: r.sub });
 */
export function principalAttributesFromCertificate(peer: PeerCertificateInfo, mapping: CertificateMapping): CertificatePrincipalResult {
  if (!peer.authorized) {
    return { ok: false, code: "MTLS_NOT_AUTHORIZED", message: `client certificate did not verify against the client CA (${peer.authorizationError ?? "unknown reason"})` };
  }
  const spiffe = peer.uriSans.filter((u) => u.toLowerCase().startsWith("spiffe://"));
  // An X.509-SVID carries exactly one SPIFFE ID; two would make the identity a guess.
  if (spiffe.length > 1) return { ok: false, code: "MTLS_AMBIGUOUS_IDENTITY", message: `client certificate carries ${spiffe.length} SPIFFE IDs` };
  const sub = spiffe[0] ?? peer.subjectCN;
  if (!sub) return { ok: false, code: "MTLS_NO_IDENTITY", message: "client certificate has neither a SPIFFE ID nor a subject CN" };
  const attributes = Object.hasOwn(mapping.identities, sub) ? mapping.identities[sub] : undefined;
  if (!attributes) return { ok: false, code: "MTLS_UNKNOWN_IDENTITY", message: `client certificate identity \`${sub}\` is not in the listener's identities` };
  return { ok: true, sub, attributes };
}
