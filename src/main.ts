#!/usr/bin/env bun
// The `gateway` command line. Each subcommand is a plain function over parsed params.
import { parseArgs } from "./cli/args.ts";
import { runCheck, type CheckFormat } from "./cli/check.ts";
import { EXIT, processIo, type Io } from "./cli/io.ts";
import { GatewayError } from "./errors.ts";
import { COMMIT, VERSION } from "./version.ts";

export const HELP = `gateway ${VERSION} — edge access gateway with typed separation-of-duties policies

usage:
  gateway serve   [--config gateway.toml]        run the gateway (built-in default without --config)
  gateway check   [DIR] [--format text|json|github|junit] [--keys JWKS] [--min-signers N]
                  [--replay audit.jsonl]... [--allow-flips] [--assignments FILE] [--now DATE]
  gateway explain DIR --principal FILE --request "POST /changes/42/approve"
                  [--header k=v]... [--ip IP] [--channel operational|admin] [--format text|json]
  gateway keygen  --out DIR [--kid NAME] [--alg EdDSA|ES256]
  gateway sign    DIR --key PRIVATE.jwk [--revision N] [--expires-in 30d]
  gateway verify  DIR --keys TRUSTED.jwks [--min-signers N]
  gateway audit verify FILE|DIR... [--keys GATEWAY.jwks]
  gateway init    [DIR]                          write a starter gateway.toml and policies/
  gateway --version

exit codes:
  0   ok
  1   policy errors (parse or type errors)
  2   policy tests failed
  3   decision flips found by --replay
  4   verification failed (bundle signatures, audit chain)
  5   separation-of-duties violations in --assignments
  64  usage error
`;

type Command = (argv: string[], io: Io) => Promise<number>;

const commands: Record<string, Command> = {
  async check(argv, io) {
    const a = parseArgs(argv, { values: ["format", "now", "keys", "min-signers", "assignments"], repeated: ["replay"], booleans: ["allow-flips"] });
    const format = (a.flags.format ?? "text") as CheckFormat;
    if (!["text", "json", "github", "junit"].includes(format)) throw new GatewayError("USAGE", `unknown format \`${format}\``);
    const now = a.flags.now ? Date.parse(a.flags.now) : undefined;
    if (now !== undefined && Number.isNaN(now)) throw new GatewayError("USAGE", `bad --now \`${a.flags.now}\``);
    return runCheck({ dir: a.positionals[0] ?? "policies", format, now, assignments: a.flags.assignments }, io);
  },
};

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === "--version" || cmd === "version") {
    io.out(`gateway ${VERSION} (${COMMIT})`);
    return EXIT.ok;
  }
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    io.out(HELP);
    return cmd ? EXIT.ok : EXIT.usage;
  }
  const run = commands[cmd];
  if (!run) {
    io.err(`error: unknown command \`${cmd}\`\n\n${HELP}`);
    return EXIT.usage;
  }
  try {
    return await run(rest, io);
  } catch (e) {
    if (e instanceof GatewayError && e.code === "USAGE") {
      io.err(`error: ${e.message}${e.detail?.known ? ` (known flags: ${e.detail.known})` : ""}`);
      return EXIT.usage;
    }
    throw e;
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  // `serve` keeps running on its own; every other command exits with its code.
  if (code !== -1) process.exit(code);
}
