// Which credentials each channel accepts, and which one decides when a request presents two.
// The credentials themselves (how a token or a certificate proves someone) are src/authn/'s.
import type { Channel, PrincipalSchema } from "../../../dsl/mod.ts";
import { bearerCredential, certificateCredential, isRefusal, type AuthnOutcome, type Credential } from "../../authn/mod.ts";
import type { ListenerConfig } from "../../config/mod.ts";
import type { ConnectionInfo } from "../../tls/mod.ts";
import { refuse, type RequestState, type StageDeps } from "./env.ts";
import type { Stage, StageResult } from "./stage.ts";

/** Establishes who calls on one channel; synchronous when the credential needs no verification now. */
export type ChannelAuthentication = (request: Request, info: ConnectionInfo, schema: PrincipalSchema) => AuthnOutcome | Promise<AuthnOutcome>;

/**
 * The operational channel takes a bearer token or a client certificate; a token wins when both
 * are presented, and a request with neither is refused as the bearer scheme refuses it (with its
 * `WWW-Authenticate` challenge). The admin channel takes client certificates only: a bearer token
 * there is another channel's credential and is refused even beside a certificate.
 */
export function channelAuthentication(channel: Channel, credentials: { bearer: Credential; certificate: Credential }): ChannelAuthentication {
  const { bearer, certificate } = credentials;
  if (channel === "admin") {
    return (request, info, schema) => {
      if (bearer.presented(request, info)) return { status: 401, code: "AUTHN_TOKEN_NOT_ACCEPTED", message: "the admin channel accepts client certificates only" };
      if (!certificate.presented(request, info)) return { status: 401, code: "MTLS_REQUIRED", message: "the admin channel needs a client certificate from the admin CA" };
      return certificate.authenticate(request, info, schema);
    };
  }
  return (request, info, schema) =>
    !bearer.presented(request, info) && certificate.presented(request, info) ? certificate.authenticate(request, info, schema) : bearer.authenticate(request, info, schema);
}

/** The authentication stage: the caller, or a refusal (401, or 503 when a key set cannot be fetched). */
export function authenticate(deps: StageDeps, listener: ListenerConfig): Stage {
  const byChannel = channelAuthentication(deps.channel, { bearer: bearerCredential(deps.authn), certificate: certificateCredential(listener.certificateMapping) });
  const proceed = (s: RequestState, outcome: AuthnOutcome): StageResult | Promise<StageResult> => {
    if (!isRefusal(outcome)) {
      s.caller = outcome;
      return undefined;
    }
    deps.metrics.authnFailures.inc({ code: outcome.code });
    return refuse(s, deps, {
      status: outcome.status, code: outcome.code, detail: outcome.message, path: s.target.path, verdict: "unauthenticated",
      headers: outcome.challenge ? { "www-authenticate": outcome.challenge } : undefined,
    });
  };
  return {
    name: "authenticate",
    enter(s) {
      const outcome = byChannel(s.request, s.connection, s.active.compiled.policy.schema);
      return outcome instanceof Promise ? outcome.then((o) => proceed(s, o)) : proceed(s, outcome);
    },
  };
}
