// How the bundle commands print what went wrong: one `error[CODE]: …` line per problem.
import { formatBundleProblem, type BundleProblem } from "../bundle/mod.ts";
import { GatewayError } from "../errors.ts";
import type { Io } from "./io.ts";

/** The stable code of a coded error, or null (then the caller names the code). */
export function errorCode(error: unknown): string | null {
  return error instanceof GatewayError ? error.code : null;
}

/** Every problem as its own `error[CODE]: path: message` line on stderr. */
export function printProblems(io: Io, problems: readonly BundleProblem[]): void {
  for (const problem of problems) io.err(formatBundleProblem(problem));
}
