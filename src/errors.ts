import type { ErrorCode } from "./error-codes.ts";

/**
 * An error with a stable machine-readable `code` (like jose's `ERR_JWT_EXPIRED`) from the
 * catalogue in src/error-codes.ts: tests and problem bodies use the code, people read the message.
 */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly detail?: Readonly<Record<string, unknown>>;
  constructor(code: ErrorCode, message: string, detail?: Readonly<Record<string, unknown>>) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.detail = detail;
  }
}
