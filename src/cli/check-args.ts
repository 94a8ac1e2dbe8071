// `gateway check`'s arguments → its params: the format and gates, and the extra steps the flags
// add (bundle signatures with `--keys`, decision flips with `--replay`). Bad arguments throw
// `GatewayError("USAGE")`.
import { GatewayError } from "../errors.ts";
import { intFlag, parseArgs } from "./args.ts";
import type { CheckFormat, CheckParams } from "./check.ts";

/**
 * The params of `gateway check` from the words after `check`.
 *
 * @example await parseCheckArgs(["policies", "--format", "json"]) // { dir: "policies", format: "json", … }
 */
export async function parseCheckArgs(argv: readonly string[]): Promise<CheckParams> {
  const a = parseArgs(argv, { values: ["format", "now", "keys", "min-signers", "assignments", "max-examples", "max-errors", "max-skipped", "min-coverage"], repeated: ["replay"], booleans: ["allow-flips", "allow-skipped", "warnings-as-errors", "coverage"] });
  const format = (a.flags.format ?? "text") as CheckFormat;
  if (!["text", "json", "github", "junit"].includes(format)) throw new GatewayError("USAGE", `unknown format \`${format}\``);
  const now = a.flags.now ? Date.parse(a.flags.now) : undefined;
  if (now !== undefined && Number.isNaN(now)) throw new GatewayError("USAGE", `bad --now \`${a.flags.now}\``);
  const dir = a.positionals[0] ?? "policies";
  const extraSteps: NonNullable<CheckParams["extraSteps"]> = [];
  if (a.flags.keys) {
    const keysFile = a.flags.keys;
    const minSigners = intFlag(a.flags["min-signers"], "min-signers") ?? 1;
    extraSteps.push({
      name: "signatures",
      title: "bundle signatures",
      async run() {
        const lines: string[] = [];
        const { runVerify } = await import("./verify.ts");
        const code = await runVerify({ dir, keysFile, minSigners }, { out: (l) => lines.push(l), err: (l) => lines.push(l) });
        return { exitCode: code, text: lines, annotations: code === 0 ? [] : lines.map((message) => ({ level: "error" as const, title: "bundle signature", message })), json: { ok: code === 0, lines } };
      },
    });
  }
  if (a.lists.replay?.length) {
    const { parseSkippedShare, replayStep } = await import("./replay.ts");
    const maxSkippedFlag = a.flags["max-skipped"];
    if (maxSkippedFlag !== undefined && a.booleans.has("allow-skipped")) throw new GatewayError("USAGE", "`--allow-skipped` and `--max-skipped` exclude each other");
    const maxSkipped = maxSkippedFlag === undefined ? (a.booleans.has("allow-skipped") ? 1 : 0) : parseSkippedShare(maxSkippedFlag);
    if (maxSkipped === null) throw new GatewayError("USAGE", `\`--max-skipped\` needs a share such as \`5%\` or \`0.05\`, got \`${maxSkippedFlag}\``);
    extraSteps.push(replayStep({ paths: a.lists.replay, allowFlips: a.booleans.has("allow-flips"), maxExamples: intFlag(a.flags["max-examples"], "max-examples"), maxSkipped }));
  } else {
    for (const flag of ["allow-flips", "allow-skipped", "max-skipped"]) {
      if (a.booleans.has(flag) || a.flags[flag] !== undefined) throw new GatewayError("USAGE", `\`--${flag}\` only applies with \`--replay\``);
    }
  }
  const minCoverageFlag = a.flags["min-coverage"];
  const minCoverage = minCoverageFlag === undefined ? undefined : Number(minCoverageFlag.replace(/%$/, ""));
  if (minCoverage !== undefined && (!/^\d+(\.\d+)?%?$/.test(minCoverageFlag!) || minCoverage > 100)) throw new GatewayError("USAGE", `\`--min-coverage\` needs a percentage from 0 to 100, got \`${minCoverageFlag}\``);
  return { dir, format, now, coverage: a.booleans.has("coverage"), minCoverage, assignments: a.flags.assignments, maxErrors: intFlag(a.flags["max-errors"], "max-errors"), warningsAsErrors: a.booleans.has("warnings-as-errors"), extraSteps };
}
