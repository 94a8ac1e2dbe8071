#!/usr/bin/env bun
// The `gateway` command line. Each subcommand is a plain function over parsed params.
import { existsSync } from "node:fs";
import { parseArgs } from "./cli/args.ts";
import { runCheck, type CheckFormat, type CheckParams } from "./cli/check.ts";
import { EXIT, processIo, type Io } from "./cli/io.ts";
import { GatewayError } from "./errors.ts";
import type { GatewayConfig } from "./config/mod.ts";
import { exitWhenDrained } from "./stdio.ts";
import { COMMIT, VERSION } from "./version.ts";

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EEXIST: "already exists",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EADDRINUSE: "address already in use",
};

/**
 * A file-system or socket failure (`ENOENT`, `EACCES`, …) met by a command, as a coded error:
 * the user sees `error[FILE_ACCESS_FAILED]: cannot mkdir \`/x\`: permission denied (EACCES)`
 * instead of a stack trace. Returns null for anything else (a programmer error keeps its trace).
 */
function systemErrorAsGatewayError(e: unknown): GatewayError | null {
  if (!(e instanceof Error)) return null;
  const { code, syscall, path } = e as NodeJS.ErrnoException;
  if (typeof code !== "string" || !/^E[A-Z0-9]+$/.test(code)) return null;
  const what = `${syscall ?? "access"}${path ? ` \`${path}\`` : ""}`;
  return new GatewayError("FILE_ACCESS_FAILED", `cannot ${what}: ${ERRNO_TEXT[code] ?? code.toLowerCase()} (${code})`, { errno: code });
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
function formatCodedError(e: GatewayError): string {
  const help = typeof e.detail?.help === "string" ? `\n  help: ${e.detail.help}` : "";
  return `error[${e.code}]: ${e.message}${help}`;
}

function intFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new GatewayError("USAGE", `\`--${name}\` needs a whole number, got \`${value}\``);
  return Number(value);
}

/** The pipe `bin/gateway.mjs` hands the gateway (`DUTYGATE_LIFELINE_FD`): its end means the wrapper is gone. */
function lifelineFd(value: string | undefined): number | undefined {
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

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
    return SERVING;
  },
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

/**
 * `serve` with `listen.workers` > 1: prepares the shared state once, starts the workers and
 * watches them (src/workers/supervisor.ts). SIGHUP reaches every worker; SIGTERM/SIGINT (or the
 * launcher's end) stop them all gracefully, then the supervisor exits 0; workers that keep
 * dying end it with exit 8. A worker that fails its start fails the whole start with its code.
 */
async function superviseWorkers(config: GatewayConfig, resetLedger: boolean, io: Io): Promise<number> {
  const { createLogger, prepareWorkerState, withFields } = await import("./gateway/mod.ts");
  const { selfCommand, startSupervisor } = await import("./workers/mod.ts");
  selfCommand(); // refuses the runtimes that cannot start workers, before anything is prepared
  const log = withFields(createLogger(config.log.level), { supervisor: process.pid });
  const ports = await prepareWorkerState(config, { resetLedger, log });
  let supervisor;
  try {
    supervisor = await startSupervisor({
      count: config.workers ?? 1, listenPort: ports.listenPort, adminPort: ports.adminPort,
      // The config file by its absolute path; `--reset-ledger` was decided here, never again by a restarted worker.
      args: ["serve", "--config", config.source!], cwd: process.cwd(), env: process.env, log, out: io.out,
      // A worker drains, then stops within its deadline; past both (and a margin) it is killed.
      stopDeadlineMs: config.shutdown.drainMs + config.shutdown.timeoutMs + 5_000,
    });
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (typeof code === "number") return code;
    throw e;
  }
  const running = supervisor;
  process.on("SIGHUP", () => {
    log.info("SIGHUP: reloading policy and certificates in every worker");
    running.reload();
  });
  const stop = (why: string) => {
    log.info(`${why}: stopping every worker gracefully`);
    void running.stop();
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => stop(sig));
  const lifeline = lifelineFd(process.env.DUTYGATE_LIFELINE_FD);
  if (lifeline !== undefined) {
    const { createReadStream } = await import("node:fs");
    const stream = createReadStream("", { fd: lifeline });
    stream.on("data", () => {});
    stream.on("end", () => stop("the launcher is gone"));
    stream.on("error", () => stop("the launcher is gone"));
  }
  void running.exited.then((code) => exitWhenDrained(code));
  return SERVING;
}

/** Returned by `serve`: the process keeps running until a signal stops it. */
const SERVING = -1;

const commands: Record<string, Command> = {
  async serve(argv, io) {
    const a = parseArgs(argv, { values: ["config"], booleans: ["reset-ledger"] });
    // The one place a failed start becomes a message and exit 6: whatever stops the start
    // (config, state directory, keys, certificates, ledger, audit log, policy) fails closed alike.
    try {
      const { loadConfig, formatConfigErrors } = await import("./config/mod.ts");
      const { startGateway, startupBanner } = await import("./gateway/mod.ts");
      const loaded = loadConfig(a.flags.config ?? null, { cwd: process.cwd() });
      if (loaded.ok && loaded.config.demo && !existsSync(loaded.config.policy.dir)) {
        // The built-in default from an empty directory: start from the embedded example policies.
        const { writeExamplePolicies } = await import("./init/mod.ts");
        writeExamplePolicies(loaded.config.policy.dir);
        io.out(`wrote the example policies to ${loaded.config.policy.dir} (edits go live: the directory is watched)`);
      }
      if (!loaded.ok) {
        io.err(formatConfigErrors(loaded.errors, a.flags.config ?? "(built-in default)"));
        return EXIT.config;
      }
      const { parseWorkerIdentity, WORKER_ENV } = await import("./workers/mod.ts");
      const identity = parseWorkerIdentity(process.env[WORKER_ENV]);
      if (identity !== null) {
        // One worker of a supervisor: the ports the supervisor fixed, the banner through it.
        const { connectToSupervisor } = await import("./workers/mod.ts");
        const link = connectToSupervisor(identity);
        if (link === null) throw new GatewayError("WORKERS_UNSUPPORTED", `\`${WORKER_ENV}\` is set, but this process has no channel to a supervisor`);
        const config = { ...loaded.config, listen: { ...loaded.config.listen, port: identity.listenPort }, admin: loaded.config.admin && identity.adminPort !== null ? { ...loaded.config.admin, port: identity.adminPort } : loaded.config.admin };
        const gw = await startGateway(config, { signals: true, worker: link });
        link.ready(identity.id === 0 ? [...await startupBanner(gw), `workers: ${identity.count} processes share ${gw.operational.url} (SO_REUSEPORT); admin listener and this banner: worker 0`] : []);
        return SERVING;
      }
      if ((loaded.config.workers ?? 1) > 1) return await superviseWorkers(loaded.config, a.booleans.has("reset-ledger"), io);
      const gw = await startGateway(loaded.config, { signals: true, resetLedger: a.booleans.has("reset-ledger"), lifelineFd: lifelineFd(process.env.DUTYGATE_LIFELINE_FD) });
      // One write: a reader that waits for the first line must not miss the warnings after it.
      io.out((await startupBanner(gw)).join("\n"));
    } catch (e) {
      io.err(formatCodedError(startupFailure(e)));
      return EXIT.config;
    }
    return SERVING;
  },
  async check(argv, io) {
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
          const { runVerify } = await import("./cli/verify.ts");
          const code = await runVerify({ dir, keysFile, minSigners }, { out: (l) => lines.push(l), err: (l) => lines.push(l) });
          return { exitCode: code, text: lines, annotations: code === 0 ? [] : lines.map((message) => ({ level: "error" as const, title: "bundle signature", message })), json: { ok: code === 0, lines } };
        },
      });
    }
    if (a.lists.replay?.length) {
      const { parseSkippedShare, replayStep } = await import("./cli/replay.ts");
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
    return runCheck({ dir, format, now, coverage: a.booleans.has("coverage"), minCoverage, assignments: a.flags.assignments, maxErrors: intFlag(a.flags["max-errors"], "max-errors"), warningsAsErrors: a.booleans.has("warnings-as-errors"), extraSteps }, io);
  },
  async explain(argv, io) {
    const a = parseArgs(argv, { values: ["principal", "request", "ip", "channel", "time", "format", "history"], repeated: ["header"] });
    const dir = a.positionals[0];
    if (!dir || !a.flags.principal || !a.flags.request) throw new GatewayError("USAGE", "explain needs `DIR --principal FILE --request \"METHOD /path\"`");
    const format = a.flags.format ?? "text";
    if (format !== "text" && format !== "json") throw new GatewayError("USAGE", `unknown format \`${format}\` (text or json)`);
    const channel = a.flags.channel ?? "operational";
    if (channel !== "operational" && channel !== "admin") throw new GatewayError("USAGE", `unknown channel \`${channel}\` (operational or admin)`);
    const { runExplain } = await import("./cli/explain.ts");
    return runExplain({ dir, principalFile: a.flags.principal, request: a.flags.request, headers: a.lists.header, ip: a.flags.ip, channel, time: a.flags.time, format, historyFile: a.flags.history }, io);
  },
  async query(argv, io) {
    const a = parseArgs(argv, { values: ["principal", "duty", "format"] });
    const dir = a.positionals[0];
    if (!dir || (a.flags.principal === undefined) === (a.flags.duty === undefined)) throw new GatewayError("USAGE", "query needs `DIR --principal FILE` or `DIR --duty DUTY`");
    const format = a.flags.format ?? "text";
    if (format !== "text" && format !== "json") throw new GatewayError("USAGE", `unknown format \`${format}\` (text or json)`);
    const { runQuery } = await import("./cli/query.ts");
    return runQuery({ dir, principalFile: a.flags.principal, duty: a.flags.duty, format }, io);
  },
  async fmt(argv, io) {
    const a = parseArgs(argv, { booleans: ["check", "diff"] });
    const { runFmt } = await import("./cli/fmt.ts");
    return runFmt({ paths: a.positionals, check: a.booleans.has("check"), diff: a.booleans.has("diff") }, io);
  },
  async play(argv, io) {
    const { parsePlayArgs, runPlay } = await import("./cli/play.ts");
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
    const { startLanguageServer } = await import("./lsp/mod.ts");
    startLanguageServer({ input: process.stdin, output: process.stdout });
    return SERVING;
  },
  async keygen(argv, io) {
    const a = parseArgs(argv, { values: ["out", "kid", "alg", "trusted"] });
    if (!a.flags.out) throw new GatewayError("USAGE", "keygen needs `--out DIR`");
    const alg = (a.flags.alg ?? "EdDSA") as "EdDSA" | "ES256";
    if (alg !== "EdDSA" && alg !== "ES256") throw new GatewayError("USAGE", `unsupported algorithm \`${alg}\` (EdDSA or ES256)`);
    const { runKeygen } = await import("./cli/keygen.ts");
    return runKeygen({ outDir: a.flags.out, kid: a.flags.kid ?? "signer-1", alg, trustedKeysFile: a.flags.trusted }, io);
  },
  async keys(argv, io) {
    const a = parseArgs(argv, {});
    const { KEYS_ACTIONS, runKeys } = await import("./cli/keys.ts");
    const [action, trustedKeysFile, ...operands] = a.positionals;
    if (!KEYS_ACTIONS.includes(action as never) || !trustedKeysFile) throw new GatewayError("USAGE", `usage: gateway keys ${KEYS_ACTIONS.join("|")} TRUSTED.jwks [PUBLIC.jwk|KID]...`);
    return runKeys({ action: action as (typeof KEYS_ACTIONS)[number], trustedKeysFile, operands }, io);
  },
  async sign(argv, io) {
    const a = parseArgs(argv, { values: ["key", "revision", "expires-in", "expires-at"], booleans: ["new-revision"] });
    const dir = a.positionals[0];
    if (!dir || !a.flags.key) throw new GatewayError("USAGE", "sign needs `DIR --key PRIVATE.jwk`");
    const { runSign } = await import("./cli/sign.ts");
    return runSign({ dir, keyFile: a.flags.key, revision: intFlag(a.flags.revision, "revision"), newRevision: a.booleans.has("new-revision"), expiresIn: a.flags["expires-in"], expiresAt: a.flags["expires-at"] }, io);
  },
  async verify(argv, io) {
    const a = parseArgs(argv, { values: ["keys", "min-signers", "state-dir"] });
    const dir = a.positionals[0];
    if (!dir || !a.flags.keys) throw new GatewayError("USAGE", "verify needs `DIR --keys TRUSTED.jwks`");
    const { runVerify } = await import("./cli/verify.ts");
    return runVerify({ dir, keysFile: a.flags.keys, minSigners: intFlag(a.flags["min-signers"], "min-signers") ?? 1, stateDir: a.flags["state-dir"] }, io);
  },
  async init(argv, io) {
    const a = parseArgs(argv, { values: ["state-dir", "audit-dir", "listen"] });
    if (a.positionals.length > 1) throw new GatewayError("USAGE", "init takes one directory");
    const { runInit } = await import("./cli/init.ts");
    return runInit({ dir: a.positionals[0] ?? ".", stateDir: a.flags["state-dir"], auditDir: a.flags["audit-dir"], listenAddress: a.flags.listen }, io);
  },
  async ledger(argv, io) {
    const a = parseArgs(argv, { values: ["state-dir", "ledger", "config", "format"], booleans: ["force"] });
    const { LEDGER_ACTIONS, ledgerPathOf, runLedgerCommand } = await import("./cli/ledger.ts");
    const [action, ...ids] = a.positionals;
    if (!LEDGER_ACTIONS.includes(action as never)) throw new GatewayError("USAGE", `usage: gateway ledger ${LEDGER_ACTIONS.join("|")} … (--state-dir DIR | --ledger FILE | --config FILE)`);
    const format = a.flags.format ?? "text";
    if (format !== "text" && format !== "json") throw new GatewayError("USAGE", `unknown format \`${format}\` (text or json)`);
    const path = ledgerPathOf({ stateDir: a.flags["state-dir"], ledger: a.flags.ledger, config: a.flags.config });
    let config: import("./config/mod.ts").GatewayConfig | undefined;
    if (a.flags.config !== undefined) {
      const { loadConfig, formatConfigErrors } = await import("./config/mod.ts");
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
    const { AUDIT_VERIFY_USAGE, parseAuditVerifyArgs, runAuditVerify } = await import("./cli/audit-verify.ts");
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

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  // `serve` keeps running on its own; every other command exits with its code once its output
  // has left the process (a pipe's reader may be slower than the command).
  if (code !== SERVING) await exitWhenDrained(code);
}
