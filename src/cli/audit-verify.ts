// `gateway audit verify FILE|DIR... [--keys JWKS] [--anchor JWS] [--partial] [--allow-unsigned-tail]`
import { readFile } from "node:fs/promises";
import type { JSONWebKeySet } from "jose";
import { chainLabel, describeTail, verifyAuditChains, type AuditVerification } from "../audit/mod.ts";
import { GatewayError } from "../errors.ts";
import { fileErrorReason } from "../lib/mod.ts";
import { parseArgs } from "./args.ts";
import { EXIT, type Io } from "./io.ts";

/** Arguments of `gateway audit verify`. */
export interface AuditVerifyArgs {
  /** Files or directories: of one chain, or of several workers' chains (each verified on its own). */
  files: string[];
  /** JWKS file of the checkpoint signers; without it signatures are not checked. */
  keysFile?: string | null;
  /** A checkpoint JWS kept outside the log, which the chain must reach. */
  anchor?: string | null;
  /** Accept a chain whose first files were archived away. */
  partial?: boolean;
  /** With keys, accept records no checkpoint signs yet (a running gateway's log). */
  allowUnsignedTail?: boolean;
}

export const AUDIT_VERIFY_USAGE = "usage: gateway audit verify FILE|DIR... [--keys JWKS] [--anchor JWS] [--partial] [--allow-unsigned-tail]";

/**
 * Parses the words after `gateway audit verify` with the one argument parser of the CLI.
 * Throws `GatewayError("USAGE")` for bad input.
 *
 * @example parseAuditVerifyArgs(["./audit", "--keys", "keys.jwks"]) // { files: ["./audit"], keysFile: "keys.jwks", … }
 */
export function parseAuditVerifyArgs(argv: readonly string[]): AuditVerifyArgs {
  const a = parseArgs(argv, { values: ["keys", "anchor"], booleans: ["partial", "allow-unsigned-tail"] });
  for (const flag of ["keys", "anchor"] as const) {
    if (a.flags[flag] === "") throw new GatewayError("USAGE", `\`--${flag}\` needs a value`);
  }
  if (a.positionals.length === 0) throw new GatewayError("USAGE", "no audit file or directory given");
  return { files: a.positionals, keysFile: a.flags.keys ?? null, anchor: a.flags.anchor ?? null, partial: a.booleans.has("partial"), allowUnsignedTail: a.booleans.has("allow-unsigned-tail") };
}

/**
 * Runs `gateway audit verify`: prints `ok: N records, C checkpoints, F files` (and notes on
 * unsigned tail records / unchecked signatures) and returns 0, or prints
 * `FILE:LINE: KIND: message` for the first break and returns 4 (`EXIT.verificationFailed`); bad
 * usage or an unreadable input returns 64 (`EXIT.usage`). With keys,
 * records after the last checkpoint are a break (`unsigned`) unless `allowUnsignedTail`.
 */
export async function runAuditVerify(args: AuditVerifyArgs, io: Io): Promise<number> {
  if (args.files.length === 0) {
    io.err(AUDIT_VERIFY_USAGE);
    return EXIT.usage;
  }
  let keys: JSONWebKeySet | undefined;
  if (args.keysFile) {
    try {
      keys = parseJwks(await readFile(args.keysFile, "utf8"));
    } catch (error) {
      const reason = error instanceof SyntaxError ? `not valid JSON (${error.message.replace(/^JSON Parse error: /, "").toLowerCase()})` : fileErrorReason(error);
      const unreadable = new GatewayError("AUDIT_KEYS_UNREADABLE", `cannot use keys file \`${args.keysFile}\`: ${reason}`);
      io.err(`error[${unreadable.code}]: ${unreadable.message}`);
      return EXIT.usage;
    }
  }
  let chains;
  try {
    chains = await verifyAuditChains(args.files, { keys, anchor: args.anchor ?? undefined, partial: args.partial ?? false, allowUnsignedTail: args.allowUnsignedTail ?? false });
  } catch (error) {
    if (error instanceof GatewayError) {
      io.err(`error[${error.code}]: ${error.message}`);
      return EXIT.usage;
    }
    throw error;
  }
  // One chain (a gateway without workers) reads as it always did; several (one per worker) are
  // reported chain by chain, each line led by the chain's name, then a summary.
  if (chains.length === 1) return reportChain(chains[0]!.result, "", io) ? EXIT.ok : EXIT.verificationFailed;
  let broken = 0;
  for (const { chain, result } of chains) if (!reportChain(result, `chain ${chainLabel(chain)}: `, io)) broken++;
  io.out(broken === 0 ? `ok: ${chains.length} chains intact` : `broken: ${broken} of ${chains.length} chains`);
  return broken === 0 ? EXIT.ok : EXIT.verificationFailed;
}

/** Prints one chain's result (each line after `prefix`); true when it is intact. */
function reportChain(result: AuditVerification, prefix: string, io: Io): boolean {
  if (!result.ok) {
    const b = result.break!;
    io.out(`${prefix}${b.file}:${b.line}: ${b.kind}: ${b.message}`);
    return false;
  }
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  io.out(`${prefix}ok: ${plural(result.records, "record")}, ${plural(result.checkpoints, "checkpoint")}, ${plural(result.files, "file")}`);
  if (result.recordsAfterLastCheckpoint > 0) {
    const tail = result.recordsAfterLastCheckpoint;
    const from = (result.lastSeq ?? 0) - tail + 1;
    io.out(`${prefix}note: unsigned tail: ${describeTail(tail, result.bytesAfterLastCheckpoint, from, result.lastSeq ?? from)} after the last checkpoint ${tail === 1 ? "is" : "are"} not covered by a signature`);
  }
  if (result.unknownOutcomes > 0) {
    const n = result.unknownOutcomes;
    const seqs = result.unknownOutcomeSeqs.join(", ") + (n > result.unknownOutcomeSeqs.length ? ", …" : "");
    io.out(`${prefix}note: outcome unknown for ${plural(n, "allowed request")} (decision seq ${seqs}): no outcome was recorded — the gateway stopped before the upstream answered, or ${n === 1 ? "it was" : "they were"} still in flight`);
  }
  if (!result.signaturesChecked) io.out(`${prefix}note: checkpoint signatures not checked: no \`--keys\` given`);
  return true;
}

function parseJwks(text: string): JSONWebKeySet {
  const value = JSON.parse(text) as { keys?: unknown };
  if (value === null || typeof value !== "object" || !Array.isArray(value.keys)) throw new Error("not a JWKS (no `keys` array)");
  return value as JSONWebKeySet;
}
