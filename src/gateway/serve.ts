// `gateway serve`: assemble the pipeline from its parts and run it. Start-up fails closed: no
// valid policy, no listener. SIGHUP reloads policy and certificates; SIGTERM/SIGINT stop
// gracefully: drain (readiness 503, answers close their connections), then stop accepting, finish
// in-flight requests up to a deadline, flush the audit log.
import { createReadStream, mkdirSync } from "node:fs";
import { openAuditLog, type AuditLog } from "../audit/mod.ts";
import { createJwtAuthenticator } from "../authn/mod.ts";
import { DEMO_UPSTREAM_PORTS, ensureDemoIssuer, mintDemoToken, upstreamClient } from "../config/mod.ts";
import type { GatewayConfig, ListenerConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import { exitWhenDrained } from "../stdio.ts";
import { existingHttp1Pool } from "../http/mod.ts";
import { createIdentityTokenSigner, poolOriginOf } from "../http/mod.ts";
import { schedulePrune, type DutyLedger } from "../ledger/mod.ts";
import { loadTlsMaterial, probeFreePort, startListener, watchCertificates, type CertificateWatcher, type RunningListener } from "../tls/mod.ts";
import { readinessOf, workerFleet, type AdminDeps } from "./admin.ts";
import { startDemoUpstreams, type DemoUpstreams } from "./demo-upstream.ts";
import { ensureGatewayKey, type GatewayKey } from "./keys.ts";
import { instrumentLedger, openConfiguredLedger } from "./ledger.ts";
import { createLogger, withFields, type Logger } from "./log.ts";
import type { WorkerLink } from "../workers/mod.ts";
import { Counter, Gauge, Metrics } from "./metrics.ts";
import { createPipeline, type PipelineDeps } from "./pipeline.ts";
import { PolicyManager } from "./policy-manager.ts";

export interface RunningGateway {
  config: GatewayConfig;
  operational: RunningListener;
  admin: RunningListener | null;
  policy: PolicyManager;
  metrics: Metrics;
  gatewayKey: GatewayKey;
  audit: AuditLog | null;
  ledger: DutyLedger;
  demo: DemoUpstreams | null;
  /** Reloads policy and certificates (what SIGHUP does). */
  reload(trigger?: string): Promise<void>;
  /**
   * Graceful stop: for `drainMs` (default `shutdown.drain`) readiness answers 503 and answers
   * carry `Connection: close` while the listeners still serve; then they stop accepting, requests
   * in flight get up to `deadlineMs` (default `shutdown.timeout`), and the audit log is flushed
   * and closed. A later call while draining with a shorter `drainMs` ends the drain sooner.
   */
  stop(options?: { drainMs?: number; deadlineMs?: number }): Promise<void>;
  /** True from the start of a stop: readiness answers 503. */
  readonly stopping: boolean;
}

export interface StartGatewayOptions {
  log?: Logger;
  /** Install SIGHUP/SIGTERM/SIGINT handlers (the CLI does; tests do not). */
  signals?: boolean;
  /**
   * A file descriptor whose other end the launcher holds (`bin/gateway.mjs` passes one as
   * `DUTYGATE_LIFELINE_FD`): when it reaches its end the launcher is gone, however it died, and
   * the gateway stops gracefully as on SIGTERM, then exits.
   */
  lifelineFd?: number;
  /** Skip the audit log entirely (benchmarks of the audit cost only). */
  auditDisabled?: boolean;
  /** Start although the recorded duty ledger is missing or replaced (`serve --reset-ledger`). */
  resetLedger?: boolean;
  /**
   * This process is one worker of a supervisor (`listen.workers` > 1): it shares the operational
   * port (SO_REUSEPORT), writes its own audit chain (`audit-w<N>-…`, `worker` in every record),
   * serves the admin listener only as worker 0 (with every worker's metrics, and reloads that
   * reach every worker), and stops when the supervisor's channel closes.
   */
  worker?: WorkerLink;
}

export async function startGateway(config: GatewayConfig, options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const worker = options.worker ?? null;
  const workerId = worker?.identity.id;
  const baseLog = options.log ?? createLogger(config.log.level);
  // A worker's log lines say which worker wrote them: the workers share one stderr.
  const log = worker ? withFields(baseLog, { worker: workerId }) : baseLog;
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const metrics = new Metrics();
  const gatewayKey = await ensureGatewayKey(config.stateDir);
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  };

  try {
    let demo: DemoUpstreams | null = null;
    if (config.demo) {
      await ensureDemoIssuer(config.stateDir);
      demo = await startDemoUpstreams(DEMO_UPSTREAM_PORTS, config.identity.header);
      cleanups.push(() => demo!.close());
    }

    // The ledger before the policy: on a shared ledger the fleet's highest accepted bundle revision
    // lives in its database, and the first policy load checks against it.
    const opened = await openConfiguredLedger(config, { log, resetLedger: options.resetLedger });
    cleanups.push(() => opened.ledger.close());
    const ledger = instrumentLedger(opened.ledger, metrics);

    const policy = new PolicyManager({
      policy: config.policy,
      stateDir: config.stateDir,
      revisionStore: opened.revisionStore ?? undefined,
      upstreams: config.upstreams,
      log: (level, message, fields) => log[level](message, fields),
      onSwap: (active) => {
        metrics.activeRevision.set(active.revision);
        authn.clear();
      },
    });
    // One count of reloads, the manager's: `/-/policy` and the metric read the same numbers.
    metrics.reloads = new Counter(metrics.reloads.name, metrics.reloads.help, { collect: () => [[{ result: "ok" }, policy.reloads.ok], [{ result: "failed" }, policy.reloads.failed]] });
    for (const name of Object.keys(config.upstreams)) metrics.upstreamErrors.declare({ upstream: name });
    const authn = createJwtAuthenticator({ issuers: config.issuers });
    // Read at each scrape, so an alert can warn ahead of the expiry (docs/observability.md).
    metrics.policyExpiry = new Gauge(metrics.policyExpiry.name, metrics.policyExpiry.help, () => {
      const expiresAt = policy.active?.expiresAt;
      return expiresAt ? expiresAt.getTime() / 1000 : [];
    });
    metrics.policyDegraded = new Gauge(metrics.policyDegraded.name, metrics.policyDegraded.help, () => (policy.degraded ? 1 : 0));
    const first = await policy.reload("start");
    if (!first.ok) {
      throw new GatewayError("POLICY_UNAVAILABLE", `no valid policy in \`${config.policy.dir}\` (${first.error.code}); refusing to serve:\n  ${first.error.problems.join("\n  ")}`);
    }
    cleanups.push(() => policy.close());

    const audit = options.auditDisabled ? null : await openAuditLog({ ...config.audit, worker: workerId, signingKey: { key: gatewayKey.privateKey, kid: gatewayKey.kid, alg: "EdDSA" } });
    if (audit) cleanups.push(() => audit.close());
    const countUnknown = async () => (await ledger.pending()).filter((p) => p.state === "unknown").length;
    let ledgerSize = 0;
    let unknownReservations = await countUnknown();
    if (unknownReservations > 0) {
      log.warn("the duty ledger holds reservations of unknown outcome (a gateway stopped before the upstream answered); they count as performed until an operator confirms or releases them: gateway ledger list-pending", { count: unknownReservations, ledger: opened.where });
    }
    const pruning = schedulePrune(ledger, { onError: (e) => log.warn("ledger prune failed", { error: (e as Error).message }) });
    cleanups.push(() => pruning.stop());
    // Reservations also turn unknown while serving: a settle that failed, or another process that died.
    const sizeTimer = setInterval(() => {
      void ledger.size().then((n) => (ledgerSize = n)).catch(() => {});
      void countUnknown().then((n) => (unknownReservations = n)).catch(() => {});
    }, 10_000);
    sizeTimer.unref?.();
    cleanups.push(() => clearInterval(sizeTimer));
    metrics.ledgerSize = new Gauge("dutygate_ledger_entries", "Entries in the duty ledger (refreshed every 10 s).", () => ledgerSize);
    metrics.ledgerUnknownReservations = new Gauge(metrics.ledgerUnknownReservations.name, `${metrics.ledgerUnknownReservations.help} (refreshed every 10 s)`, () => unknownReservations);
    metrics.ledgerAvailable = new Gauge(metrics.ledgerAvailable.name, metrics.ledgerAvailable.help, () => (ledger.availability?.().available === false ? 0 : 1));
    // The HTTP/1.1 client's connections per upstream, read at each scrape (fetch exposes none,
    // so upstreams that fetch carries have no series).
    const pooled = Object.values(config.upstreams).flatMap((u) => {
      const origin = poolOriginOf(u, upstreamClient(u));
      return origin === null ? [] : [{ name: u.name, origin }];
    });
    metrics.upstreamConnections = new Gauge(metrics.upstreamConnections.name, metrics.upstreamConnections.help, () => pooled.flatMap(({ name, origin }) => {
      const pool = existingHttp1Pool(origin);
      const open = pool?.openConnections ?? 0, idle = pool?.idleConnections ?? 0;
      return [[{ upstream: name, state: "idle" }, idle], [{ upstream: name, state: "busy" }, open - idle]] as const;
    }));
    metrics.upstreamWaiting = new Gauge(metrics.upstreamWaiting.name, metrics.upstreamWaiting.help, () => pooled.map(({ name, origin }) => [{ upstream: name }, existingHttp1Pool(origin)?.waitingRequests ?? 0] as const));
    // On stop, idle kept-alive connections close (in-flight ones finish; the pool is per process).
    cleanups.push(() => { for (const { origin } of pooled) existingHttp1Pool(origin)?.close(); });

    const identity = await createIdentityTokenSigner({ privateKey: gatewayKey.privateKey, publicKey: gatewayKey.publicJwk, kid: gatewayKey.kid, alg: "EdDSA", issuer: "dutygate", ttlMs: config.identity.ttlMs });

    let stopping: Promise<void> | null = null;
    let drainStarted = 0;
    let endDrain: (() => void) | null = null;
    let drainTimer: ReturnType<typeof setTimeout> | undefined;
    const adminDeps: AdminDeps = { metrics, policy, ledger, audit, stopping: () => stopping !== null, fleet: worker ? workerFleet(worker) : undefined };
    const deps: PipelineDeps = { config, policy, authn, ledger, audit, identity, metrics, log };

    const startOne = async (listener: ListenerConfig, channel: "operational" | "admin") => {
      const tls = await loadTlsMaterial(listener, { stateDir: config.stateDir, name: channel === "admin" ? "admin" : "listen" });
      const pipeline = createPipeline(deps, channel, listener, channel === "admin" ? adminDeps : undefined);
      const running = await startListener({
        // The pipeline enforces max_body_bytes itself (a 413 problem with a request id and an audit
        // record); a refusal by the listener would carry neither, so the listener gets no lower limit.
        // What the listener must refuse itself (no URL can be made of it) is recorded by the pipeline.
        listener, tls, fetch: pipeline, refuse: pipeline.refuse, maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        reusePort: worker !== null && channel === "operational",
        onError: (e) => log.error("listener error", { channel, error: (e as Error)?.message }),
      });
      cleanups.push(() => running.stop({ graceful: false }));
      return running;
    };
    const operational = await startOne(config.listen, "operational");
    // One admin listener for all workers: worker 0's (docs/architecture.md "Workers").
    const admin = config.admin && (workerId === undefined || workerId === 0) ? await startOne(config.admin, "admin") : null;

    const reloadCertificates = async () => {
      for (const [listener, running, name] of [[config.listen, operational, "listen"], [config.admin, admin, "admin"]] as const) {
        if (!listener || !running) continue;
        try {
          await running.reloadCertificates(await loadTlsMaterial(listener, { stateDir: config.stateDir, name }));
        } catch (e) {
          log.error("certificate reload failed; keeping the current certificates", { listener: name, error: (e as Error).message });
        }
      }
    };
    const watchers: CertificateWatcher[] = [];
    for (const listener of [config.listen, config.admin]) {
      if (listener?.certificate) watchers.push(watchCertificates(listener, () => void reloadCertificates()));
    }
    cleanups.push(() => watchers.forEach((w) => w.close()));
    if (config.policy.watch) policy.watch();

    const gateway: RunningGateway = {
      config, operational, admin, policy, metrics, gatewayKey, audit, ledger, demo,
      get stopping() {
        return stopping !== null;
      },
      async reload(trigger = "sighup") {
        await Promise.all([policy.reload(trigger), reloadCertificates()]);
      },
      stop({ drainMs = config.shutdown.drainMs, deadlineMs = config.shutdown.timeoutMs } = {}) {
        if (stopping !== null) {
          // Already stopping: a shorter drain asked for now ends the one running sooner.
          if (endDrain !== null) {
            clearTimeout(drainTimer);
            drainTimer = setTimeout(endDrain, Math.max(0, drainStarted + drainMs - Date.now()));
          }
          return stopping;
        }
        stopping = (async () => {
          if (drainMs > 0) {
            // A load balancer sees readiness fail and moves traffic away; kept-alive clients are
            // told to reconnect (through it) instead of finding the connection reset.
            operational.drain();
            admin?.drain();
            log.info(`draining for ${drainMs} ms: readiness answers 503, answers close their connections`);
            drainStarted = Date.now();
            await new Promise<void>((resolve) => {
              endDrain = resolve;
              drainTimer = setTimeout(resolve, drainMs);
            });
            endDrain = null;
          }
          policy.close();
          await Promise.all([operational.stop({ graceful: true, deadlineMs }), admin?.stop({ graceful: true, deadlineMs })]);
          await cleanup();
        })();
        return stopping;
      },
    };

    worker?.serve({
      renderMetrics: () => metrics.render(),
      readiness: () => ({ report: readinessOf(adminDeps), digest: policy.active?.digest ?? null }),
      async reload() {
        const r = await policy.reload("admin");
        return r.ok ? { worker: workerId!, ok: true, revision: r.active.revision, digest: r.active.digest } : { worker: workerId!, ok: false, code: r.error.code };
      },
      supervisorGone() {
        log.info("the supervisor is gone: stopping gracefully");
        void gateway.stop().then(() => exitWhenDrained(0));
      },
    });

    if (options.signals) {
      process.on("SIGHUP", () => {
        log.info("SIGHUP: reloading policy and certificates");
        void gateway.reload("sighup");
      });
      // The handlers stay: a stop signal that arrives again (systemd signals every process of the
      // unit and a supervisor passes it on too; a terminal signals the whole group) must not end
      // the drain or kill the process mid-stop. SIGKILL is the way to stop without a drain.
      for (const sig of ["SIGTERM", "SIGINT"] as const) {
        process.on(sig, () => {
          if (gateway.stopping) {
            log.info(`${sig}: already stopping`);
            return;
          }
          log.info(`${sig}: stopping gracefully`);
          void gateway.stop().then(() => exitWhenDrained(0));
        });
      }
    }
    if (options.lifelineFd !== undefined) {
      const lifeline = createReadStream("", { fd: options.lifelineFd });
      let gone = false;
      const launcherGone = () => {
        if (gone) return;
        gone = true;
        log.info("the launcher is gone: stopping gracefully");
        void gateway.stop().then(() => exitWhenDrained(0));
      };
      lifeline.on("data", () => {});
      lifeline.on("end", launcherGone);
      lifeline.on("error", launcherGone);
    }
    return gateway;
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/**
 * The address a listener holds, as bound: a wildcard bind says so (every interface) and names the
 * loopback URL to try from this host, so the banner never shows loopback for a public bind.
 */
export function whereBound(listener: Pick<RunningListener, "url" | "boundUrl">): string {
  return listener.boundUrl === listener.url ? listener.url : `${listener.boundUrl}, every interface (from this host: ${listener.url})`;
}

/** Ports the workers of a supervisor share, fixed before they start. */
export interface PreparedWorkerState {
  listenPort: number;
  adminPort: number | null;
}

/**
 * What a supervisor does once before its workers start, so that they do not race for it: the
 * state directory, the gateway key, the self-signed certificates, the duty ledger (opened,
 * checked against the state directory's record — `--reset-ledger` is decided here — and closed;
 * a PostgreSQL ledger is reached and its schema migrated),
 * and the addresses: each is checked free with an exclusive bind, and port 0 becomes one port
 * all workers share. Fails (closed) as `startGateway` would, with the same codes.
 */
export async function prepareWorkerState(config: GatewayConfig, options: { resetLedger?: boolean; log?: Logger } = {}): Promise<PreparedWorkerState> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  await ensureGatewayKey(config.stateDir);
  await loadTlsMaterial(config.listen, { stateDir: config.stateDir, name: "listen" });
  if (config.admin) await loadTlsMaterial(config.admin, { stateDir: config.stateDir, name: "admin" });
  // The configured ledger, SQLite or the fleet's PostgreSQL (its schema is migrated here, once).
  const { ledger } = await openConfiguredLedger(config, { log: options.log ?? createLogger("error", () => {}), resetLedger: options.resetLedger });
  await ledger.close();
  const listenPort = await probeFreePort(config.listen.host, config.listen.port);
  let adminPort = config.admin ? await probeFreePort(config.admin.host, config.admin.port) : null;
  // Two port-0 listeners: the admin port must not be the one just picked (and released) for the other.
  while (config.admin && config.admin.port === 0 && adminPort === listenPort) adminPort = await probeFreePort(config.admin.host, 0);
  return { listenPort, adminPort };
}

/** The start-up banner: where it listens, what policy is active, and a ready-to-paste curl. */
export async function startupBanner(gw: RunningGateway): Promise<string[]> {
  const a = gw.policy.active!;
  const lines = [
    `dutygate listening on ${whereBound(gw.operational)} (operational, ${gw.operational.backend} backend)`,
    gw.admin ? `admin channel on ${whereBound(gw.admin)} (client certificates from the admin CA only)` : "admin channel off (no admin CA configured)",
    `policy: ${a.files.length} files, ${a.compiled.policy.duties.length} duties, revision ${a.revision}, digest ${a.digest.slice(0, 12)}${a.signed ? `, signed by ${a.signers.join(", ")}` : ""}`,
    `audit: ${gw.config.audit.dir} (fsync ${gw.config.audit.fsync}); gateway public key: ${gw.gatewayKey.jwksFile}`,
  ];
  if (a.source === "last_good") {
    const failure = gw.policy.lastError;
    lines.push(`WARNING: serving the last good bundle from the state directory: the policy directory \`${gw.config.policy.dir}\` fails (${failure?.code ?? "unknown"}${failure?.problems[0] ? `: ${failure.problems[0]}` : ""}); readiness reports degraded until it verifies again`);
  }
  if (!gw.config.policy.requireSignature) lines.push("WARNING: policy signatures are NOT required (require_signature = false): any edit to the policy directory goes live");
  if (gw.config.demo) {
    const token = await mintDemoToken(gw.config.stateDir, { sub: "alice", roles: ["developer"], mfa: true, team: "core" });
    const reviewer = await mintDemoToken(gw.config.stateDir, { sub: "bob", roles: ["reviewer"], mfa: false, team: "core" });
    lines.push(
      "demo mode: built-in config, self-signed certificate, demo issuer and example upstreams on loopback",
      "try (alice is a developer; bob is a reviewer; tokens last 15 minutes):",
      `  curl -k -X POST ${gw.operational.url}/changes/42/submit -H "authorization: Bearer ${token}"     # allowed`,
      `  curl -k -X POST ${gw.operational.url}/changes/42/approve -H "authorization: Bearer ${token}"    # denied: developers do not approve`,
      `  curl -k -X POST ${gw.operational.url}/changes/42/approve -H "authorization: Bearer ${reviewer}"    # allowed: another person`,
    );
  }
  return lines;
}
