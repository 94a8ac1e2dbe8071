// The client certificate the TLS listener verified, as a credential: its identity (SPIFFE ID or
// subject CN) mapped to principal attributes by the listener's `identities` table.
import { coercePrincipal, type PrincipalSchema } from "../../dsl/mod.ts";
import type { CertificateMapping } from "../config/mod.ts";
import { principalAttributesFromCertificate } from "../tls/mod.ts";
import type { ConnectionInfo } from "../tls/mod.ts";
import type { AuthnOutcome, Credential } from "./credential.ts";

/** The connection's client certificate, mapped by `mapping` (the listener's). */
export function certificateCredential(mapping: CertificateMapping): Credential {
  return {
    method: "mtls",
    presented: (_request: Request, info: ConnectionInfo) => info.peerCertificate !== null && info.peerCertificate !== undefined,
    authenticate(_request: Request, info: ConnectionInfo, schema: PrincipalSchema): AuthnOutcome {
      const certificate = info.peerCertificate;
      if (!certificate) return { status: 401, code: "MTLS_REQUIRED", message: "no client certificate was presented" };
      const r = principalAttributesFromCertificate(certificate, mapping);
      if (!r.ok) return { status: 401, code: r.code, message: r.message };
      const p = coercePrincipal(schema, { ...r.attributes, sub: r.sub });
      if (!p.ok) return { status: 401, code: "AUTHN_BAD_CLAIM", message: p.message };
      return { principal: p.principal, method: "mtls", issuer: certificate.issuerCN };
    },
  };
}
