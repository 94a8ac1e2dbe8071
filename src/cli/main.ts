// The `gateway` command line: argv → the command's params → its handler (a plain function over
// params and an `Io`, in this folder), and what a failure tells the user. src/main.ts runs it.
import { intFlag, parseArgs } from "./args.ts";
import { EXIT, processIo, SERVING, type Io } from "./io.ts";
import { formatCodedError, reportCommandFailure, startupFailure } from "./failure.ts";
import { GatewayError } from "../errors.ts";
import { COMMIT, VERSION } from "../version.ts";

export const HELP = `gateway ${VERSION} — edge access gateway with typed separation-of-duties policies

usage:
  gateway serve   [--config gateway.toml]        run the gateway (built-in default without --config)
                  [--reset-ledger]               start although the recorded duty ledger is missing or replaced
  gateway check   [DIR] [--format text|json|github|junit] [--keys JWKS] [--min-signers N]
                  [--replay AUDIT.jsonl|DIR]... [--allow-flips] [--max-examples N]
                  [--allow-skipped | --max-skipped SHARE]
                  [--assignments FILE] [--now DATE] [--max-errors N] [--warnings-as-errors]
                  [--coverage] [--min-coverage N]
  gateway explain DIR --principal FILE --request "POST /changes/42/approve"
                  [--header k=v]... [--ip IP] [--channel operational|admin] [--time T] [--format text|json]
                  [--history FILE]             judge history separations against prior duties
  gateway query   DIR (--principal FILE | --duty DUTY) [--format text|json]
                                                 what a person may do, or who may do a duty
  gateway fmt     [DIR|FILE...] [--check] [--diff]
                                                 rewrite .duty files in the canonical layout
  gateway play    [DIR] [--listen HOST:PORT] [--allow-non-loopback]
                                                 a local page to edit a policy and try requests (default 127.0.0.1:8800)
  gateway lsp     [--stdio]                      language server for editors (LSP over stdin/stdout)
  gateway keygen  --out DIR [--kid NAME] [--alg EdDSA|ES256] [--trusted JWKS]
                                                 a signer key pair; adds the public key to DIR/trusted.jwks
  gateway keys    add|remove|list TRUSTED.jwks [PUBLIC.jwk|KID]...
                                                 edit a trusted signer set (public keys only, one per kid)
  gateway sign    DIR --key PRIVATE.jwk [--new-revision | --revision N] [--expires-in 30d | --expires-at DATE]
  gateway verify  DIR --keys TRUSTED.jwks [--min-signers N] [--state-dir D]
  gateway audit verify FILE|DIR... [--keys GATEWAY.jwks] [--anchor JWS] [--partial] [--allow-unsigned-tail]
  gateway ledger  list-pending | confirm ID... | release ID...  (--state-dir D | --ledger FILE | --config FILE)
                  [--format text|json] [--force]
                                                 settle reservations a stopped gateway left open
  gateway init    [DIR] [--state-dir D] [--audit-dir D] [--listen HOST:PORT]
                                                 write a starter gateway.toml and policies/
  gateway --version

exit codes:
  0   ok
  1   policy errors (parse or type errors)
  2   policy tests failed, or rule coverage below --min-coverage
  3   decision flips found by --replay
  4   verification failed (bundle signatures, audit chain)
  5   separation-of-duties violations in --assignments
  6   serve: a failed start (configuration, state directory, keys, certificates, ledger,
      policy; fails closed, see docs/deploy.md "Start-up failures")
  7   fmt --check: files not in the canonical layout
  8   serve with workers: workers kept dying (more than 5 deaths within 60 s;
      see docs/deploy.md "Workers")
  64  usage error, or an input check cannot judge (an unreadable file, a replay that
      skipped records: see --allow-skipped)
  70  internal error (a bug in the gateway: one error[INTERNAL_ERROR] line, no stack trace)
`;

type Command = (argv: string[], io: Io) => Promise<number>;

const commands: Record<string, Command> = {
  async serve(argv, io) {
    const a = parseArgs(argv, { values: ["config"], booleans: ["reset-ledger"] });
    const { runServe } = await import("./serve.ts");
    return runServe({ configFile: a.flags.config ?? null, resetLedger: a.booleans.has("reset-ledger") }, io);
  },
  async check(argv, io) {
    const { parseCheckArgs } = await import("./check-args.ts");
    const { runCheck } = await import("./check.ts");
    return runCheck(await parseCheckArgs(argv), io);
  },
  async explain(argv, io) {
    const a = parseArgs(argv, { values: ["principal", "request", "ip", "channel", "time", "format", "history"], repeated: ["header"] });
    const dir = a.positionals[0];
    if (!dir || !a.flags.principal || !a.flags.request) throw new GatewayError("USAGE", "explain needs `DIR --principal FILE --request \"METHOD /path\"`");
    const format = a.flags.format ?? "text";
    if (format !== "text" && format !== "json") throw new GatewayError("USAGE", `unknown format \`${format}\` (text or json)`);
    const channel = a.flags.channel ?? "operational";
    if (channel !== "operational" && channel !== "admin") throw new GatewayError("USAGE", `unknown channel \`${channel}\` (operational or admin)`);
    const { runExplain } = await import("./explain.ts");
    return runExplain({ dir, principalFile: a.flags.principal, request: a.flags.request, headers: a.lists.header, ip: a.flags.ip, channel, time: a.flags.time, format, historyFile: a.flags.history }, io);
  },
  async query(argv, io) {
    const a = parseArgs(argv, { values: ["principal", "duty", "format"] });
    const dir = a.positionals[0];
    if (!dir || (a.flags.principal === undefined) === (a.flags.duty === undefined)) throw new GatewayError("USAGE", "query needs `DIR --principal FILE` or `DIR --duty DUTY`");
    const format = a.flags.format ?? "text";
    if (format !== "text" && format !== "json") throw new GatewayError("USAGE", `unknown format \`${format}\` (text or json)`);
    const { runQuery } = await import("./query.ts");
    return runQuery({ dir, principalFile: a.flags.principal, duty: a.flags.duty, format }, io);
  },
  async fmt(argv, io) {
    const a = parseArgs(argv, { booleans: ["check", "diff"] });
    const { runFmt } = await import("./fmt.ts");
    return runFmt({ paths: a.positionals, check: a.booleans.has("check"), diff: a.booleans.has("diff") }, io);
  },
  async play(argv, io) {
    const { parsePlayArgs, runPlay } = await import("./play.ts");
    const params = parsePlayArgs(argv);
    try {
      await runPlay(params, io);
    } catch (e) {
      // A refused address, a port in use, a missing directory: one coded line, exit 64.
      const coded = e instanceof GatewayError ? e : startupFailure(e);
      io.err(formatCodedError(coded));
      return EXIT.usage;
    }
    return SERVING;
  },
  async lsp(argv) {
    // `--stdio` is what LSP clients pass to say the transport; stdio is the only one.
    const a = parseArgs(argv, { booleans: ["stdio"] });
    if (a.positionals.length) throw new GatewayError("USAGE", "lsp takes no arguments");
    const { startLanguageServer } = await import("../lsp/mod.ts");
    startLanguageServer({ input: process.stdin, output: process.stdout });
    return SERVING;
  },
  async keygen(argv, io) {
    const a = parseArgs(argv, { values: ["out", "kid", "alg", "trusted"] });
    if (!a.flags.out) throw new GatewayError("USAGE", "keygen needs `--out DIR`");
    const alg = (a.flags.alg ?? "EdDSA") as "EdDSA" | "ES256";
    if (alg !== "EdDSA" && alg !== "ES256") throw new GatewayError("USAGE", `unsupported algorithm \`${alg}\` (EdDSA or ES256)`);
    const { runKeygen } = await import("./keygen.ts");
    return runKeygen({ outDir: a.flags.out, kid: a.flags.kid ?? "signer-1", alg, trustedKeysFile: a.flags.trusted }, io);
  },
  async keys(argv, io) {
    const a = parseArgs(argv, {});
    const { KEYS_ACTIONS, runKeys } = await import("./keys.ts");
    const [action, trustedKeysFile, ...operands] = a.positionals;
    if (!KEYS_ACTIONS.includes(action as never) || !trustedKeysFile) throw new GatewayError("USAGE", `usage: gateway keys ${KEYS_ACTIONS.join("|")} TRUSTED.jwks [PUBLIC.jwk|KID]...`);
    return runKeys({ action: action as (typeof KEYS_ACTIONS)[number], trustedKeysFile, operands }, io);
  },
  async sign(argv, io) {
    const a = parseArgs(argv, { values: ["key", "revision", "expires-in", "expires-at"], booleans: ["new-revision"] });
    const dir = a.positionals[0];
    if (!dir || !a.flags.key) throw new GatewayError("USAGE", "sign needs `DIR --key PRIVATE.jwk`");
    const { runSign } = await import("./sign.ts");
    return runSign({ dir, keyFile: a.flags.key, revision: intFlag(a.flags.revision, "revision"), newRevision: a.booleans.has("new-revision"), expiresIn: a.flags["expires-in"], expiresAt: a.flags["expires-at"] }, io);
  },
  async verify(argv, io) {
    const a = parseArgs(argv, { values: ["keys", "min-signers", "state-dir"] });
    const dir = a.positionals[0];
    if (!dir || !a.flags.keys) throw new GatewayError("USAGE", "verify needs `DIR --keys TRUSTED.jwks`");
    const { runVerify } = await import("./verify.ts");
    return runVerify({ dir, keysFile: a.flags.keys, minSigners: intFlag(a.flags["min-signers"], "min-signers") ?? 1, stateDir: a.flags["state-dir"] }, io);
  },
  async init(argv, io) {
    const a = parseArgs(argv, { values: ["state-dir", "audit-dir", "listen"] });
    if (a.positionals.length > 1) throw new GatewayError("USAGE", "init takes one directory");
    const { runInit } = await import("./init.ts");
    return runInit({ dir: a.positionals[0] ?? ".", stateDir: a.flags["state-dir"], auditDir: a.flags["audit-dir"], listenAddress: a.flags.listen }, io);
  },
  async ledger(argv, io) {
    const a = parseArgs(argv, { values: ["state-dir", "ledger", "config", "format"], booleans: ["force"] });
    const { LEDGER_ACTIONS, ledgerPathOf, runLedgerCommand } = await import("./ledger.ts");
    const [action, ...ids] = a.positionals;
    if (!LEDGER_ACTIONS.includes(action as never)) throw new GatewayError("USAGE", `usage: gateway ledger ${LEDGER_ACTIONS.join("|")} … (--state-dir DIR | --ledger FILE | --config FILE)`);
    const format = a.flags.format ?? "text";
    if (format !== "text" && format !== "json") throw new GatewayError("USAGE", `unknown format \`${format}\` (text or json)`);
    const path = ledgerPathOf({ stateDir: a.flags["state-dir"], ledger: a.flags.ledger, config: a.flags.config });
    let config: import("../config/mod.ts").GatewayConfig | undefined;
    if (a.flags.config !== undefined) {
      const { loadConfig, formatConfigErrors } = await import("../config/mod.ts");
      const loaded = loadConfig(a.flags.config, { cwd: process.cwd() });
      if (!loaded.ok) {
        io.err(formatConfigErrors(loaded.errors, a.flags.config));
        return EXIT.config;
      }
      config = loaded.config;
    }
    return runLedgerCommand({ action: action as (typeof LEDGER_ACTIONS)[number], path, ids, config, force: a.booleans.has("force"), format }, io);
  },
  async audit(argv, io) {
    const [sub, ...rest] = argv;
    const { AUDIT_VERIFY_USAGE, parseAuditVerifyArgs, runAuditVerify } = await import("./audit-verify.ts");
    if (sub !== "verify") throw new GatewayError("USAGE", AUDIT_VERIFY_USAGE);
    return runAuditVerify(parseAuditVerifyArgs(rest), io);
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
    return reportCommandFailure(cmd, e, io);
  }
}
