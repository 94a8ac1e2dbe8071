/**
 * An error with a stable machine-readable `code` (like jose's `ERR_JWT_EXPIRED`): tests and
 * problem bodies use the code, people read the message.
 */
export class GatewayError extends Error {
  readonly code: string;
  readonly detail?: Readonly<Record<string, unknown>>;
  constructor(code: string, message: string, detail?: Readonly<Record<string, unknown>>) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.detail = detail;
  }
}
