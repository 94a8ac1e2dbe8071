// RFC 9457 problem details: every error the gateway answers itself has this one shape.
// https://www.rfc-editor.org/rfc/rfc9457
import type { ProblemCode } from "../error-codes.ts";

export interface ProblemInit {
  status: number;
  /** Stable machine-readable code, e.g. `PATH_TRAVERSAL`; also forms the `type` URI. */
  code: ProblemCode;
  /** Short summary of the problem type; defaults to the lower-case reason phrase of `status`. */
  title?: string;
  /** Explanation of this occurrence; never a stack trace, token or secret. */
  detail?: string;
  requestId: string;
  /** More members (e.g. `duty`, `reasons`); cannot override the standard ones. */
  extra?: Readonly<Record<string, unknown>>;
  headers?: HeadersInit;
}

/** Base of the `type` URI; the code is appended. */
export const PROBLEM_TYPE_BASE = "urn:dutygate:error:";

const REASON: Record<number, string> = {
  400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found", 405: "method not allowed",
  408: "request timeout", 409: "conflict", 413: "content too large", 414: "uri too long", 415: "unsupported media type",
  421: "misdirected request", 429: "too many requests", 431: "request header fields too large", 499: "client closed request",
  500: "internal server error", 502: "bad gateway", 503: "service unavailable", 504: "gateway timeout",
};

const RESERVED = new Set(["type", "title", "status", "detail", "code", "request_id", "instance"]);

/**
 * Builds an `application/problem+json` response (RFC 9457) with `type`, `title`, `status`,
 * `detail`, `code` and `request_id`, plus `x-request-id` and `cache-control: no-store`.
 *
 * @example
 * problemResponse({ status: 400, code: "PATH_TRAVERSAL", detail: "path climbs above the root with `..`", requestId })
 */
export function problemResponse(init: ProblemInit): Response {
  const body: Record<string, unknown> = {
    type: PROBLEM_TYPE_BASE + init.code,
    title: init.title ?? REASON[init.status] ?? "error",
    status: init.status,
  };
  if (init.detail !== undefined) body.detail = init.detail;
  body.code = init.code;
  body.request_id = init.requestId;
  if (init.extra) for (const [k, v] of Object.entries(init.extra)) if (!RESERVED.has(k)) body[k] = v;
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/problem+json");
  headers.set("cache-control", "no-store");
  headers.set("x-content-type-options", "nosniff");
  headers.set("x-request-id", init.requestId);
  return new Response(JSON.stringify(body, jsonSafe), { status: init.status, headers });
}

// Errors in `extra` become their code and message only: a stack never leaves the gateway.
function jsonSafe(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { code: (value as { code?: unknown }).code, message: value.message };
  if (value instanceof Set) return [...value];
  if (typeof value === "bigint") return value.toString();
  return value;
}
