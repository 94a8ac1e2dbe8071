// One contract for every kind of credential a request can carry: the bearer token
// (bearer-credential.ts) and the client certificate (certificate-credential.ts). Each says whether
// the request presents its credential and, if so, who it proves; which kinds a channel accepts,
// and which wins when a request presents both, is the gateway's choice (src/gateway/stages/authenticate.ts).
import type { Principal, PrincipalSchema } from "../../dsl/mod.ts";
import type { ErrorCode } from "../error-codes.ts";
import type { ConnectionInfo } from "../tls/mod.ts";

/** Who called, as a credential proved it. */
export interface Caller {
  principal: Principal;
  /** The kind of credential: `jwt` (bearer token) or `mtls` (client certificate). */
  method: "jwt" | "mtls";
  /** The token's issuer or the certificate issuer's CN. */
  issuer: string | null;
}

/** Why a request is not authenticated: the status and code to answer with. */
export interface AuthnRefusal {
  status: number;
  code: ErrorCode;
  message: string;
  /** `WWW-Authenticate` of a bearer-token refusal (RFC 6750 §3). */
  challenge?: string;
}

export type AuthnOutcome = Caller | AuthnRefusal;

/** True when the outcome is a refusal. */
export function isRefusal(outcome: AuthnOutcome): outcome is AuthnRefusal {
  return !("principal" in outcome);
}

/** One kind of credential. */
export interface Credential {
  readonly method: Caller["method"];
  /** Whether the request carries this kind of credential at all. */
  presented(request: Request, info: ConnectionInfo): boolean;
  /**
   * Who the credential proves, typed by the policy's principal schema, or why it proves nobody.
   * Synchronous when nothing must be fetched or verified (a cached token): no promise per request.
   */
  authenticate(request: Request, info: ConnectionInfo, schema: PrincipalSchema): AuthnOutcome | Promise<AuthnOutcome>;
}
