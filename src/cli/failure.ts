// What a command that failed tells its user: one `error[CODE]: message` line (and a `help:` line
// when there is one), never a stack trace, and the exit code that goes with it.
import { GatewayError } from "../errors.ts";
import { errnoOf, fileErrorReason } from "../lib/mod.ts";
import { EXIT, type Io } from "./io.ts";

/**
 * A file-system or socket failure (`ENOENT`, `EACCES`, …) met by a command, as a coded error:
 * the user sees `error[FILE_ACCESS_FAILED]: cannot mkdir \`/x\`: permission denied (EACCES)`
 * instead of a stack trace. Returns null for anything else (a programmer error keeps its trace).
 */
export function systemErrorAsGatewayError(e: unknown): GatewayError | null {
  const code = errnoOf(e);
  if (!(e instanceof Error) || code === null) return null;
  const { syscall, path } = e as NodeJS.ErrnoException;
  const what = `${syscall ?? "access"}${path ? ` \`${path}\`` : ""}`;
  return new GatewayError("FILE_ACCESS_FAILED", `cannot ${what}: ${fileErrorReason(e)} (${code})`, { errno: code });
}

/**
 * Any failure of `serve` before it serves, as a coded error: the operator reads
 * `error[CODE]: message` (and a `help:` line when there is one), never a stack trace. Coded
 * errors keep their code, file-system failures become `FILE_ACCESS_FAILED`, and anything else
 * (a library's own exception) is `STARTUP_FAILED` with its message.
 */
export function startupFailure(e: unknown): GatewayError {
  if (e instanceof GatewayError) return e;
  const system = systemErrorAsGatewayError(e);
  if (system) return system;
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return new GatewayError("STARTUP_FAILED", `cannot start: ${text.split("\n")[0]}`);
}

/** `error[CODE]: message`, then the error's `help` (if any) on its own line. */
export function formatCodedError(e: GatewayError): string {
  const help = typeof e.detail?.help === "string" ? `\n  help: ${e.detail.help}` : "";
  return `error[${e.code}]: ${e.message}${help}`;
}

/**
 * What a command that threw tells its user, and its exit code: a usage error, a coded error
 * (`error[CODE]: message`), or — for anything unexpected, a bug — one `error[INTERNAL_ERROR]`
 * line and exit 70. Never a stack trace.
 */
export function reportCommandFailure(cmd: string, e: unknown, io: Io): number {
  if (e instanceof GatewayError && e.code === "USAGE") {
    io.err(`error: ${e.message}${e.detail?.known ? ` (known flags: ${e.detail.known})` : ""}`);
    return EXIT.usage;
  }
  // Bad input or an unusable path reached a handler that did not expect it: say what and
  // where with a code, never a stack trace. `serve` fails closed like a bad configuration.
  const coded = e instanceof GatewayError ? e : systemErrorAsGatewayError(e);
  if (coded) {
    io.err(`error[${coded.code}]: ${coded.message}`);
    return cmd === "serve" ? EXIT.config : EXIT.usage;
  }
  // Anything else is a bug. The user gets what failed and a code to report, not a stack
  // trace; a CI gate sees a distinct exit code instead of a crash it might read as a result.
  const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  io.err(`error[INTERNAL_ERROR]: \`gateway ${cmd}\` failed unexpectedly: ${what.split("\n")[0]!.slice(0, 300)}`);
  io.err("  = help: this is a bug in the gateway; please report it with the command and input that caused it");
  return EXIT.internal;
}
