// `gateway serve [--config FILE] [--reset-ledger]`: start the gateway (or, with `listen.workers`
// > 1, the supervisor of its workers, or one of those workers) and keep serving. The one place a
// failed start becomes a message and exit 6.
import { existsSync } from "node:fs";
import type { GatewayConfig } from "../config/mod.ts";
import type { RunningSupervisor } from "../workers/mod.ts";
import { GatewayError } from "../errors.ts";
import { exitWhenDrained } from "../stdio.ts";
import { formatCodedError, startupFailure } from "./failure.ts";
import { EXIT, SERVING, type Io } from "./io.ts";

/** Parameters of `gateway serve`. */
export interface ServeParams {
  /** `--config FILE`; null for the built-in default. */
  configFile: string | null;
  /** `--reset-ledger`: start although the recorded duty ledger is missing or replaced. */
  resetLedger: boolean;
}

/**
 * Starts the gateway and returns {@link SERVING} (signals stop it), or the exit code of a start
 * that failed (6, with the reason on stderr; a crash loop of workers ends with 8 later).
 */
export async function runServe(params: ServeParams, io: Io): Promise<number> {
  // The one place a failed start becomes a message and exit 6: whatever stops the start
  // (config, state directory, keys, certificates, ledger, audit log, policy) fails closed alike.
  try {
    const { loadConfig, formatConfigErrors } = await import("../config/mod.ts");
    const { startGateway, startupBanner } = await import("../gateway/mod.ts");
    const loaded = loadConfig(params.configFile, { cwd: process.cwd() });
    if (loaded.ok && loaded.config.demo && !existsSync(loaded.config.policy.dir)) {
      // The built-in default from an empty directory: start from the embedded example policies.
      const { writeExamplePolicies } = await import("../init/mod.ts");
      writeExamplePolicies(loaded.config.policy.dir);
      io.out(`wrote the example policies to ${loaded.config.policy.dir} (edits go live: the directory is watched)`);
    }
    if (!loaded.ok) {
      io.err(formatConfigErrors(loaded.errors, params.configFile ?? "(built-in default)"));
      return EXIT.config;
    }
    const { parseWorkerIdentity, WORKER_ENV } = await import("../workers/mod.ts");
    const identity = parseWorkerIdentity(envVar(WORKER_ENV));
    if (identity !== null) {
      // One worker of a supervisor: the ports the supervisor fixed, the banner through it.
      const { connectToSupervisor } = await import("../workers/mod.ts");
      const link = connectToSupervisor(identity);
      if (link === null) throw new GatewayError("WORKERS_UNSUPPORTED", `\`${WORKER_ENV}\` is set, but this process has no channel to a supervisor`);
      const config = { ...loaded.config, listen: { ...loaded.config.listen, port: identity.listenPort }, admin: loaded.config.admin && identity.adminPort !== null ? { ...loaded.config.admin, port: identity.adminPort } : loaded.config.admin };
      const gw = await startGateway(config, { signals: true, worker: link });
      link.ready(identity.id === 0 ? [...await startupBanner(gw), `workers: ${identity.count} processes share ${gw.operational.url} (SO_REUSEPORT); admin listener and this banner: worker 0`] : []);
      return SERVING;
    }
    if ((loaded.config.workers ?? 1) > 1) return await superviseWorkers(loaded.config, params.resetLedger, io);
    const gw = await startGateway(loaded.config, { signals: true, resetLedger: params.resetLedger, lifelineFd: lifelineFd(envVar("DUTYGATE_LIFELINE_FD")) });
    // One write: a reader that waits for the first line must not miss the warnings after it.
    io.out((await startupBanner(gw)).join("\n"));
  } catch (e) {
    io.err(formatCodedError(startupFailure(e)));
    return EXIT.config;
  }
  return SERVING;
}

/**
 * A variable a supervisor or the launcher sets, or undefined. Deno throws (`NotCapable`) on any
 * read of the environment without `--allow-env`, which `deno task start` does not grant: no
 * supervisor or launcher set it there, so unreadable is unset.
 */
function envVar(name: string): string | undefined {
  try {
    return process.env[name];
  } catch {
    return undefined;
  }
}

/** The pipe `bin/gateway.mjs` hands the gateway (`DUTYGATE_LIFELINE_FD`): its end means the wrapper is gone. */
function lifelineFd(value: string | undefined): number | undefined {
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/**
 * `serve` with `listen.workers` > 1: prepares the shared state once, starts the workers and
 * watches them (src/workers/supervisor.ts). SIGHUP reaches every worker; SIGTERM/SIGINT (or the
 * launcher's end) stop them all gracefully, then the supervisor exits 0; workers that keep
 * dying end it with exit 8. A worker that fails its start fails the whole start with its code.
 */
async function superviseWorkers(config: GatewayConfig, resetLedger: boolean, io: Io): Promise<number> {
  const { createLogger, prepareWorkerState, withFields } = await import("../gateway/mod.ts");
  const { selfCommand, startSupervisor } = await import("../workers/mod.ts");
  selfCommand(); // refuses the runtimes that cannot start workers, before anything is prepared
  const log = withFields(createLogger(config.log.level), { supervisor: process.pid });
  // Signals are handled from here on: one that arrives while the workers start is acted on once
  // they serve (SIGHUP's and SIGTERM's default would end the supervisor and leave its workers to
  // notice), and the handlers stay, so a stop signal that comes again (a terminal's second Ctrl-C,
  // systemd signalling every process of the unit) neither ends the drain nor kills the supervisor.
  let running: RunningSupervisor | null = null;
  let reloadAsked = false;
  let stopAsked: string | null = null;
  process.on("SIGHUP", () => {
    if (running === null) {
      reloadAsked = true;
      return;
    }
    log.info("SIGHUP: reloading policy and certificates in every worker");
    running.reload();
  });
  const stop = (why: string) => {
    if (stopAsked !== null) {
      log.info(`${why}: already stopping`);
      return;
    }
    stopAsked = why;
    if (running === null) return;
    log.info(`${why}: stopping every worker gracefully`);
    void running.stop();
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => stop(sig));
  const ports = await prepareWorkerState(config, { resetLedger, log });
  let supervisor;
  try {
    supervisor = await startSupervisor({
      count: config.workers ?? 1, listenPort: ports.listenPort, adminPort: ports.adminPort,
      // The config file by its absolute path; `--reset-ledger` was decided here, never again by a restarted worker.
      args: ["serve", "--config", config.source!], cwd: process.cwd(), env: process.env, log, out: io.out,
      // A worker drains, then stops within its deadline; past both (and a margin) it is killed.
      stopDeadlineMs: config.shutdown.drainMs + config.shutdown.timeoutMs + 5_000,
      startTimeoutMs: config.workerStartTimeoutMs,
    });
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (typeof code === "number") return code;
    throw e;
  }
  running = supervisor;
  if (stopAsked !== null) {
    log.info(`${stopAsked} while the workers started: stopping every worker gracefully`);
    void supervisor.stop();
  } else if (reloadAsked) {
    log.info("SIGHUP while the workers started: reloading policy and certificates in every worker");
    supervisor.reload();
  }
  const lifeline = lifelineFd(envVar("DUTYGATE_LIFELINE_FD"));
  if (lifeline !== undefined) {
    const { createReadStream } = await import("node:fs");
    const stream = createReadStream("", { fd: lifeline });
    stream.on("data", () => {});
    stream.on("end", () => stop("the launcher is gone"));
    stream.on("error", () => stop("the launcher is gone"));
  }
  void supervisor.exited.then((end) => exitWhenDrained(end === "crash-loop" ? EXIT.workersCrashLoop : EXIT.ok));
  return SERVING;
}
