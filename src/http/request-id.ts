// Request ids: accepted from a trusted caller when well-formed, else minted here.

/** Printable, header- and log-safe, at most 128 characters. */
const WELL_FORMED_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$/;

export interface RequestIdOptions {
  /** Accept the caller's `x-request-id` (config `trustRequestId`). */
  trustIncoming: boolean;
}

/**
 * The id of this request: the caller's `x-request-id` when trusted and well-formed
 * (`[A-Za-z0-9][A-Za-z0-9._:-]{0,127}`), otherwise a fresh random UUID.
 *
 * @example
 * requestIdFor(request, { trustIncoming: config.trustRequestId }) // "3f0c…-…"
 */
export function requestIdFor(request: Request, options: RequestIdOptions): string {
  if (options.trustIncoming) {
    const incoming = request.headers.get("x-request-id");
    if (incoming !== null && WELL_FORMED_REQUEST_ID.test(incoming)) return incoming;
  }
  return crypto.randomUUID();
}

/** True when `id` would be accepted from a trusted caller. */
export function isWellFormedRequestId(id: string): boolean {
  return WELL_FORMED_REQUEST_ID.test(id);
}
