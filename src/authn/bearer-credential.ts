// The bearer token of `Authorization` (RFC 6750) as a credential: a JWT verified by the issuers'
// keys and mapped to a principal (jwt.ts).
import type { PrincipalSchema } from "../../dsl/mod.ts";
import type { ConnectionInfo } from "../tls/mod.ts";
import { wwwAuthenticate } from "./bearer.ts";
import type { AuthnOutcome, Credential } from "./credential.ts";
import { AUTHN_HTTP_STATUS } from "./errors.ts";
import type { AuthnResult, JwtAuthenticator } from "./jwt.ts";

/** The `Authorization` header's credential, verified by `jwt`. */
export function bearerCredential(jwt: Pick<JwtAuthenticator, "authenticate">): Credential {
  return {
    method: "jwt",
    presented: (request: Request) => request.headers.get("authorization") !== null,
    authenticate(request: Request, _info: ConnectionInfo, schema: PrincipalSchema) {
      const r = jwt.authenticate(request.headers.get("authorization"), schema);
      return r instanceof Promise ? r.then(outcomeOf) : outcomeOf(r);
    },
  };
}

function outcomeOf(r: AuthnResult): AuthnOutcome {
  if (!r.ok) return { status: AUTHN_HTTP_STATUS[r.code] ?? 401, code: r.code, message: r.message, challenge: wwwAuthenticate(r) };
  return { principal: r.principal, method: "jwt", issuer: r.issuer };
}
