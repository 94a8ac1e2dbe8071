// The HTTP layer the gateway's request pipeline is built from: request-target normalisation,
// request ids, problem bodies, identity tokens and the streaming reverse proxy.
export { normalizeRequestPath, requestTargetOf } from "./normalize-path.ts";
export type { NormalizedTarget, NormalizeOptions, PathErrorCode } from "./normalize-path.ts";
export { problemResponse, PROBLEM_TYPE_BASE } from "./problem.ts";
export type { ProblemInit } from "./problem.ts";
export { requestIdFor, isWellFormedRequestId } from "./request-id.ts";
export type { RequestIdOptions } from "./request-id.ts";
export { traceContextFor, parseTraceparent } from "./trace-context.ts";
export type { TraceContext } from "./trace-context.ts";
export { createIdentityTokenSigner, MAX_IDENTITY_TOKEN_TTL_MS } from "./identity-token.ts";
export type { IdentityTokenSigner, IdentityTokenSignerOptions, IdentityPrincipal, IdentityTokenExtra } from "./identity-token.ts";
export { forwardToUpstream, poolOriginOf, stripHopByHopHeaders, upstreamTarget } from "./forward.ts";
export type { ForwardOptions } from "./forward.ts";
export { normalizeFieldName } from "./field-name.ts";
export { ambiguousQueryParameter, methodOverrideParameter, queryNameReadings, splitQuery } from "./query-names.ts";
export type { AmbiguousQueryParameter, QueryParameter } from "./query-names.ts";
export { SECRET_HEADERS } from "./secret-headers.ts";
export { existingHttp1Pool } from "./forward-http1.ts";
