// `[listen] workers = 2`: a supervisor and two worker processes on one address. Real processes
// (the supervisor in its own process group, killed by PID whatever happens), a real upstream and
// real clients over loopback. The gateway serves from both workers, survives `kill -9` of one
// with no failed request beyond those in flight on it, reloads in every worker, keeps history
// separation of duties across the two, answers readiness for every worker, keeps its counters
// from going backwards across a restart, gives up on a crash loop, and leaves one verifiable
// audit chain per worker; a stuck worker is killed and restarted, a worker whose supervisor is
// killed stops by itself, one that cannot start fails the start, and one that hangs in its start
// (SIGSTOP) fails the first start past `worker_start_timeout` or is killed and counted when it
// restarts; under Deno (`deno task start`) one process serves, workers are refused.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditFileChain } from "../../src/audit/mod.ts";
import { EXIT, memoryIo, runAuditVerify } from "../../src/cli/mod.ts";
import type { IssuedCertificate } from "../support/pki.ts";
import { killGroupOnExit, killProcessGroup } from "../support/process-group.ts";
import {
  createTestIssuer, createTestPki, drainText, REPO_ROOT, runServeUntilExitOrBanner, SHIPPED_POLICIES, spawnGatewayProcess, startTestUpstream, writeProcessConfig,
  type GatewayProcess, type TestIssuer, type TestUpstream,
} from "../support/harness.ts";

interface LogLine { msg: string; worker?: number; supervisor?: number; pid?: number; pids?: number[]; [k: string]: unknown }

function logLines(gw: GatewayProcess): LogLine[] {
  return gw.stderr().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine);
}

/** Polls `check` every 20 ms, at most `tries` times; throws when it never holds. */
async function until(what: string, check: () => boolean | Promise<boolean>, tries = 1500): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await Bun.sleep(20);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** The process runs (a zombie does not: a worker whose supervisor died is reaped by whoever adopts it, if at all). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  return !existsSync(stat) || !/^\d+ \(.*\) Z /.test(readFileSync(stat, "utf8"));
}

/** Every audit record of the directory, with the chain (file) it came from. */
function auditRecords(auditDir: string): Array<Record<string, unknown> & { chain: string }> {
  return readdirSync(auditDir).sort().flatMap((name) => {
    const chain = auditFileChain(name);
    if (chain === null) return [];
    return readFileSync(join(auditDir, name), "utf8").split("\n").filter(Boolean).map((l) => ({ ...(JSON.parse(l) as Record<string, unknown>), chain }));
  });
}

interface WorkersFixture {
  dir: string;
  upstream: TestUpstream;
  issuer: TestIssuer;
  gw: GatewayProcess;
  adminUrl: string;
  olga: IssuedCertificate;
  /** One request over a fresh connection (so the kernel picks a worker for each). */
  request(path: string, token: string, method?: string): Promise<number>;
  admin(path: string, method?: string): Promise<Response>;
  close(): Promise<void>;
}

interface ReadyzBody {
  status: string;
  ready: boolean;
  reasons: string[];
  workers: Array<{ worker: number; ready: boolean; status: string; reason?: string }>;
}

/** The pids of the processes whose parent is `pid` (every thread's children: a runtime may spawn from any). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so read after the last `)`.
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The process group led by `pid` still has a member (a zombie leader not reaped yet does not count). */
function groupHasMembers(pid: number): boolean {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pid && fields[0] !== "Z") return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

/**
 * Stops (SIGSTOP) the first child of `parent` that is not in `known`, as soon as it appears,
 * before it serves: a worker hung in its start. Resolves with its pid.
 */
async function stopNextChild(parent: number, known: readonly number[], deadlineMs = 60_000): Promise<number> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const fresh = childrenOf(parent).find((pid) => !known.includes(pid));
    if (fresh !== undefined) {
      process.kill(fresh, "SIGSTOP");
      return fresh;
    }
    await Bun.sleep(2);
  }
  throw new Error(`no new child of ${parent} within ${deadlineMs} ms`);
}

/** `drain`: the `[shutdown] drain` of the workers (none unless given); `listen`: more `[listen]` keys. */
async function startWorkers(dir: string, options: { drain?: string; listen?: string } = {}): Promise<WorkersFixture> {
  cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
  const upstream = startTestUpstream();
  const issuer = await createTestIssuer(dir);
  const pki = await createTestPki(dir, "admin-ca");
  const olga = await pki.client("olga");
  const config = writeProcessConfig(dir, {
    upstreamUrl: upstream.url, issuer, policyDir: join(dir, "policies"),
    listenToml: ["workers = 2", options.listen ?? ""].join("\n"),
    shutdownToml: `drain = ${JSON.stringify(options.drain ?? "0s")}`,
    extra: [
      "[admin]", `address = "127.0.0.1:0"`, `client_ca = ${JSON.stringify(pki.ca.certFile)}`,
      "[admin.identities.olga]", `roles = ["sre"]`, "mfa = true", `team = "ops"`,
    ].join("\n"),
  });
  let gw: GatewayProcess;
  try {
    gw = await spawnGatewayProcess(config, { cwd: dir, deadlineMs: 60_000 });
  } catch (e) {
    upstream.stop();
    throw e;
  }
  const adminUrl = /admin channel on (https:\/\/\S+)/.exec(gw.stdout())![1]!;
  return {
    dir, upstream, issuer, gw, adminUrl, olga,
    async request(path, token, method = "POST") {
      const res = await fetch(gw.url + path, { method, headers: { authorization: `Bearer ${token}` }, keepalive: false, tls: { rejectUnauthorized: false } } as RequestInit);
      await res.arrayBuffer();
      return res.status;
    },
    admin(path, method = "GET") {
      return fetch(adminUrl + path, { method, keepalive: false, tls: { rejectUnauthorized: false, cert: olga.cert, key: olga.key } } as RequestInit);
    },
    async close() {
      await gw.kill();
      upstream.stop();
    },
  };
}

/** The pids of the workers serving now: the first ones, each replaced by its latest restart. */
async function pidsNow(f: WorkersFixture): Promise<number[]> {
  const pids = [...workerPids(f.gw)];
  for (const l of logLines(f.gw)) if (l.msg === "worker restarted" && typeof l.worker === "number") pids[l.worker] = l.pid!;
  return pids;
}

function workerPids(gw: GatewayProcess): number[] {
  return logLines(gw).find((l) => l.msg === "workers serving")?.pids ?? [];
}

/** Every sample of the counters and histograms in a scrape, by series (name and labels). */
function countingSamples(text: string): Map<string, number> {
  const counting = new Set([...text.matchAll(/^# TYPE (\S+) (counter|histogram)$/gm)].map((m) => m[1]!));
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*?)(_bucket|_sum|_count)?(\{.*\})? (\S+)$/.exec(line);
    if (m && (counting.has(m[1]!) || counting.has(m[1]! + (m[2] ?? "")))) samples.set(m[1]! + (m[2] ?? "") + (m[3] ?? ""), Number(m[4]));
  }
  return samples;
}

/** The series of `before` that are missing from `after` or lower there: what went backwards. */
function wentBackwards(before: Map<string, number>, after: Map<string, number>): string[] {
  return [...before].filter(([series, value]) => !((after.get(series) ?? -1) >= value)).map(([series, value]) => `${series}: ${value} → ${after.get(series) ?? "missing"}`);
}

function metricValue(text: string, name: string, has: string[] = []): number[] {
  return text.split("\n").filter((l) => l.startsWith(name) && has.every((h) => l.includes(h))).map((l) => Number(l.slice(l.lastIndexOf(" ") + 1)));
}

// Four tests of this fixture kill a worker within a minute: a fifth would be fine, a sixth is the
// crash-loop bound and ends the fixture (exit 8).
describe("workers = 2", () => {
  let dir: string;
  let f: WorkersFixture;
  let alice: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dutygate-workers-"));
    f = await startWorkers(dir, { drain: "2s" });
    alice = await f.issuer.token({ sub: "alice", roles: ["developer", "reviewer"], mfa: true });
  }, 90_000);

  afterAll(async () => {
    await f?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("two worker processes serve the one address; the metrics of worker 0's admin listener cover both", async () => {
    await until("the supervisor's log of its workers", () => workerPids(f.gw).length > 0);
    const pids = workerPids(f.gw);
    expect(pids.length).toBe(2);
    for (const pid of pids) expect(alive(pid)).toBe(true);
    const REQUESTS = 60;
    const statuses: number[] = [];
    for (let i = 0; i < REQUESTS; i++) statuses.push(await f.request(`/changes/serve-${i}/submit`, alice));
    expect(statuses).toEqual(new Array(REQUESTS).fill(200));
    // New connections were spread over both workers: each wrote decisions to its own chain.
    await until("both chains hold decisions", () => {
      const byChain = new Set(auditRecords(join(dir, "audit")).filter((r) => r.type === "decision" && String(r.path).includes("/changes/serve-")).map((r) => r.chain));
      return byChain.has("w0") && byChain.has("w1");
    }, 500);

    const metrics = await (await f.admin("/-/metrics")).text();
    // Summed over the workers: every request, whichever worker answered it.
    expect(metricValue(metrics, "dutygate_requests_total{", ['duty="submit_change"', 'decision="allow"', 'status="200"'])).toEqual([REQUESTS]);
    expect(metricValue(metrics, "dutygate_workers ")).toEqual([2]);
    expect(metricValue(metrics, "dutygate_policy_revision{", ['worker="0"']).length).toBe(1);
    expect(metricValue(metrics, "dutygate_policy_revision{", ['worker="1"']).length).toBe(1);
    expect(metricValue(metrics, "dutygate_worker_restarts_total{", ['worker="1"'])).toEqual([0]);

    // Readiness is every worker's, each with its own line.
    const ready = await f.admin("/-/readyz");
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      status: "ready", ready: true, reasons: [],
      workers: [{ worker: 0, ready: true, status: "ready" }, { worker: 1, ready: true, status: "ready" }],
    });
  }, 60_000);

  test("history separation of duties holds across the workers: racing submit/approve by one person", async () => {
    const PAIRS = 150;
    const BATCH = 10;
    const outcomes: Array<[number, number]> = [];
    for (let start = 0; start < PAIRS; start += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, PAIRS - start) }, (_, k) => start + k);
      outcomes.push(...await Promise.all(batch.map((i) => Promise.all([f.request(`/changes/race-${i}/submit`, alice), f.request(`/changes/race-${i}/approve`, alice)]))));
    }
    const doubleDuties = outcomes.filter(([s, a]) => s === 200 && a === 200).length;
    expect(doubleDuties).toBe(0);
    // Each pair: one duty allowed, the other denied by the history rule, never both nor neither.
    expect(outcomes.filter(([s, a]) => (s === 200) === (a === 200))).toEqual([]);
    expect(outcomes.flat().every((status) => status === 200 || status === 403)).toBe(true);
    // The race was across processes: in some pairs the two decisions were made by different workers.
    await until("every race decision recorded", () => auditRecords(join(dir, "audit")).filter((r) => r.type === "decision" && String(r.path).includes("/changes/race-")).length === PAIRS * 2, 500);
    const workerOf = new Map<string, Set<string>>();
    for (const r of auditRecords(join(dir, "audit"))) {
      const m = /\/changes\/(race-\d+)\//.exec(String(r.path));
      if (r.type !== "decision" || !m) continue;
      workerOf.set(m[1]!, (workerOf.get(m[1]!) ?? new Set()).add(r.chain));
    }
    expect([...workerOf.values()].filter((chains) => chains.size === 2).length).toBeGreaterThan(0);
  }, 120_000);

  test("a reload that reached one worker only: readiness stays 200 but degraded, naming each worker's policy, until one reaches both", async () => {
    appendFileSync(join(dir, "policies", "changes.duty"), "\n# reloaded by worker 1 alone\n");
    const before = logLines(f.gw).length;
    process.kill((await pidsNow(f))[1]!, "SIGHUP");
    await until("worker 1 reloaded", () => logLines(f.gw).slice(before).some((l) => l.worker === 1 && l.msg.startsWith("policy active:")), 500);
    const split = await f.admin("/-/readyz");
    const body = (await split.json()) as ReadyzBody & { warnings: string[] };
    expect(split.status).toBe(200);
    expect(body).toMatchObject({ status: "degraded", ready: true, reasons: [] });
    expect(body.warnings).toEqual([expect.stringMatching(/^the workers serve different policies \(worker 0: [0-9a-f]{12}, worker 1: [0-9a-f]{12}\): a reload reached some of them only/)]);
    f.gw.signal("SIGHUP");
    await until("worker 0 reloaded", () => logLines(f.gw).slice(before).some((l) => l.worker === 0 && l.msg.startsWith("policy active:")), 500);
    expect(await (await f.admin("/-/readyz")).json()).toMatchObject({ status: "ready", warnings: [] });
  }, 60_000);

  test("SIGHUP to the supervisor reloads the policy in every worker; an admin reload reaches every worker", async () => {
    appendFileSync(join(dir, "policies", "changes.duty"), "\n# reloaded by SIGHUP\n");
    const before = logLines(f.gw).length;
    f.gw.signal("SIGHUP");
    const reloadedBy = () => logLines(f.gw).slice(before).filter((l) => l.msg.startsWith("policy active:") && l.msg.includes("(sighup,"));
    await until("both workers reloaded", () => reloadedBy().length === 2, 500);
    expect(reloadedBy().map((l) => l.worker).sort()).toEqual([0, 1]);
    const digests = new Set(reloadedBy().map((l) => /digest (\w+)/.exec(l.msg)![1]));
    expect(digests.size).toBe(1);

    appendFileSync(join(dir, "policies", "changes.duty"), "\n# reloaded by the admin function\n");
    const res = await f.admin("/-/policy/reload", "POST");
    const body = (await res.json()) as { ok: boolean; changed: boolean; digest: string; other_workers: Array<{ worker: number; ok: boolean; revision?: number; digest?: string }> };
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ ok: true, changed: true });
    expect(body.other_workers).toEqual([{ worker: 1, ok: true, revision: 0, digest: body.digest }]);
    expect([...digests][0]).not.toBe(body.digest.slice(0, 12));
  }, 60_000);

  test("kill -9 of a worker: no failed request beyond those in flight on it; it is restarted and counted", async () => {
    const victim = workerPids(f.gw)[1]!;
    const CLIENTS = 4;
    const MAX_REQUESTS = 4000;
    const deadline = Date.now() + 45_000;
    let sent = 0;
    let ok = 0;
    let afterRestart = 0;
    let restarted = false;
    const failures: Array<{ startedAt: number; what: string }> = [];
    const scrapes: string[] = [];
    let stop = false;
    const client = async (c: number) => {
      for (let n = 0; !stop && sent < MAX_REQUESTS && Date.now() < deadline; n++) {
        sent++;
        const startedAt = Date.now();
        try {
          const status = await f.request(`/changes/load-${c}-${n}/submit`, alice);
          if (status === 200) { ok++; if (restarted) afterRestart++; } else failures.push({ startedAt, what: `status ${status}` });
        } catch (e) {
          failures.push({ startedAt, what: (e as Error).message });
        }
      }
    };
    const load = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    try {
      await until("load under way", () => ok >= 40);
      scrapes.push(await (await f.admin("/-/metrics")).text());
      process.kill(victim, "SIGKILL");
      await until("the worker restarted", () => logLines(f.gw).some((l) => l.msg === "worker restarted" && l.worker === 1));
      restarted = true;
      await until("requests served after the restart", () => afterRestart >= 40);
      scrapes.push(await (await f.admin("/-/metrics")).text());
    } finally {
      stop = true;
      await load;
    }
    const died = logLines(f.gw).find((l) => l.msg === "a worker died; restarting it")!;
    expect(died).toMatchObject({ worker: 1, pid: victim, signal: "SIGKILL" });
    // The requests that failed were all under way before the supervisor saw the worker gone: they
    // were on its connections (or in its accept queue, which the kernel resets when the socket
    // closes). Every request started later succeeded, during the restart and after it.
    const diedAt = Date.parse(String(died.time));
    expect(failures.filter((x) => x.startedAt > diedAt)).toEqual([]);
    expect(failures.every((x) => /ECONNRESET|closed/i.test(x.what))).toBe(true);
    expect(ok).toBeGreaterThan(80);
    expect(alive(victim)).toBe(false);
    const metrics = await (await f.admin("/-/metrics")).text();
    expect(metricValue(metrics, "dutygate_worker_restarts_total{", ['worker="1"'])).toEqual([1]);
    expect(metricValue(metrics, "dutygate_worker_restarts_total{", ['worker="0"'])).toEqual([0]);
    expect(metricValue(metrics, "dutygate_workers ")).toEqual([2]);
    // No counter went backwards: the dead process's counts stay in the totals (and in worker 1's
    // CPU time), the scrape after the restart holds every series of the one before, each as high.
    const [before, after] = scrapes.map(countingSamples) as [Map<string, number>, Map<string, number>];
    expect(before.size).toBeGreaterThan(20);
    expect(wentBackwards(before, after)).toEqual([]);
    expect(wentBackwards(after, countingSamples(metrics))).toEqual([]);
    const submitted = 'dutygate_requests_total{channel="operational",duty="submit_change",decision="allow",status="200"}';
    expect(after.get(submitted)!).toBeGreaterThan(before.get(submitted)!);
  }, 90_000);

  test("a worker killed after a quiet moment: every decision it counted stays in the totals", async () => {
    const victim = (await pidsNow(f))[1]!;
    const countedInAudit = () => auditRecords(join(dir, "audit")).filter((r) => r.type === "decision" && r.channel === "operational" && r.duty === "submit_change" && r.decision === "allow").length;
    const onWorker1 = () => auditRecords(join(dir, "audit")).filter((r) => r.type === "decision" && r.worker === 1 && String(r.path).includes("/changes/quiet-")).length;
    const counted = (text: string) => metricValue(text, "dutygate_decisions_total{", ['channel="operational"', 'duty="submit_change"', 'decision="allow"', 'code="ALLOW"'])[0]!;
    // From a quiet moment: an earlier kill -9 under load lost what its worker had counted since
    // its last snapshot, so the totals begin below the audit log; the differences must agree.
    const countedBefore = counted(await (await f.admin("/-/metrics")).text());
    const decidedBefore = countedInAudit();
    // Requests over fresh connections until worker 1 has decided some, with no scrape meanwhile:
    // only its own snapshots (one a second) tell the supervisor what it counted.
    for (let i = 0; i < 200 && onWorker1() < 5; i++) expect(await f.request(`/changes/quiet-${i}/submit`, alice)).toBe(200);
    expect(onWorker1()).toBeGreaterThanOrEqual(5);
    await Bun.sleep(2_500); // two snapshot periods and a margin for a loaded machine
    const decided = countedInAudit() - decidedBefore;
    expect(decided).toBeGreaterThanOrEqual(5);
    const restarts = logLines(f.gw).filter((l) => l.msg === "worker restarted").length;
    process.kill(victim, "SIGKILL");
    await until("the worker restarted", () => logLines(f.gw).filter((l) => l.msg === "worker restarted").length > restarts);
    const metrics = await (await f.admin("/-/metrics")).text();
    // Each decision counted once its record was written: the audit log and the counter agree exactly.
    expect(counted(metrics) - countedBefore).toBe(decided);
  }, 60_000);

  test("readiness covers every worker: 503 naming a stopped worker within a bound, and one restarting; liveness stays worker 0's", async () => {
    const victim = (await pidsNow(f))[1]!;
    const readyz = async () => {
      // A generous abort: the answer is bounded at half a second, the relay's usual bound is 4 s.
      const res = await fetch(f.adminUrl + "/-/readyz", { keepalive: false, signal: AbortSignal.timeout(3_000), tls: { rejectUnauthorized: false, cert: f.olga.cert, key: f.olga.key } } as RequestInit);
      return { status: res.status, body: (await res.json()) as ReadyzBody };
    };
    // A worker that does not answer (stopped: its process and its sockets hang).
    process.kill(victim, "SIGSTOP");
    try {
      const stuck = await readyz();
      expect(stuck.status).toBe(503);
      expect(stuck.body).toMatchObject({ status: "unavailable", ready: false, reasons: ["worker 1: did not answer within 500 ms"] });
      expect(stuck.body.workers).toEqual([{ worker: 0, ready: true, status: "ready" }, { worker: 1, ready: false, status: "not_serving", reason: "did not answer within 500 ms" }]);
      // Liveness is the answering process's own: worker 0 lives.
      expect((await f.admin("/-/healthz")).status).toBe(200);
    } finally {
      process.kill(victim, "SIGCONT");
    }
    expect((await readyz()).status).toBe(200);

    // A worker that died: not ready until its successor serves.
    const restartsBefore = logLines(f.gw).filter((l) => l.msg === "worker restarted").length;
    process.kill(victim, "SIGKILL");
    const seen = new Set<string>();
    await until("ready again after the restart", async () => {
      const { status, body } = await readyz();
      const w1 = body.workers.find((w) => w.worker === 1)!;
      if (status === 503) {
        expect(w1).toMatchObject({ ready: false, status: "not_serving" });
        seen.add(w1.reason!);
      }
      return status === 200 && logLines(f.gw).filter((l) => l.msg === "worker restarted").length > restartsBefore;
    });
    expect([...seen].length).toBeGreaterThan(0);
    expect([...seen], [...seen].join(" | ")).toSatisfy((all) => all.every((r) => /^not serving(?: yet)?: (?:it died and is being restarted|restarting after it died)$/.test(r)));
  }, 60_000);

  test("the supervisor not answering (stopped): readiness 503 within its bound, a scrape 503 rather than worker 0's figures as totals", async () => {
    f.gw.signal("SIGSTOP");
    try {
      const ready = await fetch(f.adminUrl + "/-/readyz", { keepalive: false, signal: AbortSignal.timeout(4_000), tls: { rejectUnauthorized: false, cert: f.olga.cert, key: f.olga.key } } as RequestInit);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as ReadyzBody).workers[1]).toEqual({ worker: 1, ready: false, status: "not_serving", reason: "the supervisor did not answer within 1000 ms" });
      const scrape = await f.admin("/-/metrics");
      expect(scrape.status).toBe(503);
      expect(await scrape.json()).toMatchObject({ code: "WORKER_UNAVAILABLE" });
    } finally {
      f.gw.signal("SIGCONT");
    }
    const after = await f.admin("/-/metrics");
    expect(after.status).toBe(200);
    expect(metricValue(await after.text(), "dutygate_workers ")).toEqual([2]);
  }, 60_000);

  test("SIGHUP while a worker restarts: the starting worker is not killed by it, and reloads once it serves", async () => {
    const victim = (await pidsNow(f))[1]!;
    const restarts = logLines(f.gw).filter((l) => l.msg === "worker restarted").length;
    const from = logLines(f.gw).length;
    process.kill(victim, "SIGKILL");
    // SIGHUPs all through the restart: before the new worker listens, while it starts, once it serves.
    let hups = 0;
    await until("the worker restarted", () => {
      f.gw.signal("SIGHUP");
      hups++;
      return logLines(f.gw).filter((l) => l.msg === "worker restarted").length > restarts;
    }, 300);
    expect(hups).toBeGreaterThan(3);
    const since = () => logLines(f.gw).slice(from);
    // One death (the kill), none by SIGHUP: a starting worker has no SIGHUP handler of its own yet.
    expect(since().filter((l) => l.msg === "a worker died; restarting it").map((l) => l.signal)).toEqual(["SIGKILL"]);
    const successor = since().find((l) => l.msg === "worker restarted")!.pid!;
    expect(alive(successor)).toBe(true);
    // The SIGHUPs it was not sent while starting are passed on once it serves.
    const startedAt = since().findIndex((l) => l.msg === "worker restarted");
    await until("the restarted worker reloads", () => since().slice(startedAt).some((l) => l.worker === 1 && l.msg === "SIGHUP: reloading policy and certificates"), 500);
  }, 60_000);

  test("SIGTERM stops every worker gracefully; each worker's chain verifies, every record names its worker", async () => {
    // Records in both chains whatever ran before (this test alone too): fresh connections until each worker has decided one.
    const chains = () => new Set(auditRecords(join(dir, "audit")).filter((r) => String(r.path).includes("/changes/stop-")).map((r) => r.chain));
    for (let i = 0; i < 200 && chains().size < 2; i++) expect(await f.request(`/changes/stop-${i}/submit`, alice)).toBe(200);
    expect([...chains()].sort()).toEqual(["w0", "w1"]);
    const workers = [...workerPids(f.gw), ...logLines(f.gw).filter((l) => l.msg === "worker restarted").map((l) => l.pid!)];
    f.gw.signal("SIGTERM");
    // During the drain every worker says, in its own line, that it is shutting down.
    await until("readiness fails for the drain", async () => {
      const res = await f.admin("/-/readyz");
      const body = (await res.json()) as ReadyzBody;
      return res.status === 503 && body.workers.every((w) => w.reason === "the gateway is shutting down" && w.status === "unavailable");
    }, 40);
    // A stop signal again mid-drain (a terminal's second Ctrl-C, systemd signalling every process
    // of the unit) neither ends the drain nor kills the supervisor.
    f.gw.signal("SIGTERM");
    f.gw.signal("SIGINT");
    expect(await f.gw.exited).toBe(0);
    expect(logLines(f.gw).filter((l) => l.supervisor !== undefined && l.msg.endsWith(": already stopping")).map((l) => l.msg)).toEqual(["SIGTERM: already stopping", "SIGINT: already stopping"]);
    for (const pid of workers) expect(alive(pid)).toBe(false);
    const keys = join(dir, ".state", "gateway-key", "public.jwks");
    const io = memoryIo();
    const code = await runAuditVerify({ files: [join(dir, "audit")], keysFile: keys }, io);
    expect(io.stdout).toContain("ok: 2 chains intact");
    expect(code).toBe(EXIT.ok);
    expect(io.stdout.filter((l) => / ok: \d+ records/.test(l)).map((l) => l.split(":")[0])).toEqual(["chain w0", "chain w1"]);
    expect(io.stdout.at(-1)).toBe("ok: 2 chains intact");
    // Closed cleanly: no record after each chain's last checkpoint.
    expect(io.stdout.filter((l) => l.includes("unsigned tail"))).toEqual([]);
    const records = auditRecords(join(dir, "audit"));
    expect(records.filter((r) => `w${String(r.worker)}` !== r.chain)).toEqual([]);
  }, 60_000);
});

describe("workers that keep dying", () => {
  test("more than 5 deaths within 60 s: the supervisor stops the rest and exits 8", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-workers-"));
    const f = await startWorkers(dir);
    try {
      let victim = workerPids(f.gw)[1]!;
      for (let death = 1; death <= 6; death++) {
        process.kill(victim, "SIGKILL");
        if (death === 6) break;
        await until(`restart ${death}`, () => logLines(f.gw).filter((l) => l.msg === "worker restarted").length === death);
        victim = logLines(f.gw).filter((l) => l.msg === "worker restarted").at(-1)!.pid!;
      }
      expect(await f.gw.exited).toBe(8);
      expect(logLines(f.gw).find((l) => l.msg === "workers keep dying: giving up")).toMatchObject({ deaths: 6, max_restarts: 5, window_ms: 60_000 });
      expect(alive(workerPids(f.gw)[0]!)).toBe(false);
    } finally {
      await f.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("workers on their own", () => {
  test("the supervisor killed (SIGKILL): each worker stops gracefully by itself, its chain closed with a checkpoint", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-workers-"));
    const f = await startWorkers(dir);
    try {
      const token = await f.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      for (let i = 0; i < 20; i++) expect(await f.request(`/changes/orphan-${i}/submit`, token)).toBe(200);
      const pids = workerPids(f.gw);
      expect(pids.length).toBe(2);
      process.kill(f.gw.pid, "SIGKILL");
      await until("both workers gone", () => pids.every((pid) => !alive(pid)));
      await until("both said why", () => logLines(f.gw).filter((l) => l.msg === "the supervisor is gone: stopping gracefully").length === 2, 500);
      const io = memoryIo();
      expect(await runAuditVerify({ files: [join(dir, "audit")], keysFile: join(dir, ".state", "gateway-key", "public.jwks") }, io)).toBe(EXIT.ok);
      expect(io.stdout.at(-1)).toBe("ok: 2 chains intact");
      expect(io.stdout.filter((l) => l.includes("unsigned tail"))).toEqual([]);
    } finally {
      await f.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  test("SIGHUP and SIGTERM while the workers first start: the supervisor survives them and acts once every worker serves", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-workers-"));
    const upstream = startTestUpstream();
    try {
      cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
      const issuer = await createTestIssuer(dir);
      const config = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir: join(dir, "policies"), listenToml: "workers = 2" });
      const child = Bun.spawn([join(REPO_ROOT, "node_modules/.bin/bun"), join(REPO_ROOT, "src/main.ts"), "serve", "--config", config], { cwd: dir, stdout: "pipe", stderr: "pipe", detached: true });
      killGroupOnExit(child.pid);
      let stdout = "";
      let stderr = "";
      const drained = Promise.all([drainText(child.stdout, (t) => (stdout += t)), drainText(child.stderr, (t) => (stderr += t))]);
      try {
        // Once it has spawned a worker its handlers are in place (they come before anything is
        // prepared); the workers are still starting: no banner yet.
        const children = () => { try { return readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim(); } catch { return ""; } };
        await until("the supervisor spawned a worker", () => children() !== "" || child.exitCode !== null, 3000);
        expect(stdout).not.toContain("dutygate listening on");
        child.kill("SIGHUP");
        await Bun.sleep(50);
        child.kill("SIGTERM");
        expect(await child.exited).toBe(0);
        await drained;
        const lines = stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine);
        // It served first (the banner, every worker up), then stopped as asked; the reload gave way to the stop.
        expect(stdout).toContain("dutygate listening on");
        expect(lines.map((l) => l.msg)).toContain("SIGTERM while the workers started: stopping every worker gracefully");
        expect(lines.filter((l) => l.msg === "a worker died; restarting it")).toEqual([]);
      } finally {
        killProcessGroup(child.pid);
        await child.exited;
      }
    } finally {
      upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  test("a worker that stops answering (SIGSTOP: stuck, its socket still taking connections) is killed after 30 s and restarted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-workers-"));
    const f = await startWorkers(dir);
    try {
      const stuck = workerPids(f.gw)[1]!;
      process.kill(stuck, "SIGSTOP");
      await until("the supervisor kills it", () => logLines(f.gw).some((l) => l.msg === "a worker stopped answering: killing it"), 3000);
      expect(logLines(f.gw).find((l) => l.msg === "a worker stopped answering: killing it")).toMatchObject({ worker: 1, pid: stuck });
      expect(Number(logLines(f.gw).find((l) => l.msg === "a worker stopped answering: killing it")!.silent_ms)).toBeGreaterThan(30_000);
      await until("its successor serves", () => logLines(f.gw).some((l) => l.msg === "worker restarted" && l.worker === 1));
      expect(logLines(f.gw).find((l) => l.msg === "a worker died; restarting it")).toMatchObject({ worker: 1, pid: stuck, signal: "SIGKILL" });
      expect(alive(stuck)).toBe(false);
      expect((await f.admin("/-/readyz")).status).toBe(200);
      const metrics = await (await f.admin("/-/metrics")).text();
      expect(metricValue(metrics, "dutygate_worker_restarts_total{", ['worker="1"'])).toEqual([1]);
      const token = await f.issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      for (let i = 0; i < 10; i++) expect(await f.request(`/changes/unstuck-${i}/submit`, token)).toBe(200);
    } finally {
      await f.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("a worker that hangs in its first start (SIGSTOP before it serves): past worker_start_timeout, exit 6 WORKER_START_TIMEOUT, no process left", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-workers-"));
    const upstream = startTestUpstream();
    try {
      cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
      const issuer = await createTestIssuer(dir);
      const config = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir: join(dir, "policies"), listenToml: `workers = 2\nworker_start_timeout = "3s"` });
      const child = Bun.spawn([join(REPO_ROOT, "node_modules/.bin/bun"), join(REPO_ROOT, "src/main.ts"), "serve", "--config", config], { cwd: dir, stdout: "pipe", stderr: "pipe", detached: true });
      killGroupOnExit(child.pid);
      let stdout = "";
      let stderr = "";
      const drained = Promise.all([drainText(child.stdout, (t) => (stdout += t)), drainText(child.stderr, (t) => (stderr += t))]);
      try {
        const hung = await stopNextChild(child.pid, [], 30_000);
        const id = (JSON.parse(/DUTYGATE_WORKER=([^\0]*)/.exec(readFileSync(`/proc/${hung}/environ`, "utf8"))![1]!) as { id: number }).id;
        const seen = new Set([hung]);
        const watch = setInterval(() => { for (const pid of childrenOf(child.pid)) seen.add(pid); }, 20);
        const code = await child.exited;
        clearInterval(watch);
        await drained;
        expect(code).toBe(6);
        expect(stdout).not.toContain("dutygate listening on");
        const coded = stderr.split("\n").filter((l) => l.startsWith("error["));
        expect(coded).toHaveLength(1);
        expect(coded[0]).toStartWith("error[WORKER_START_TIMEOUT]: ");
        expect(coded[0]).toContain(`${id} (pid ${hung})`);
        expect(coded[0]).toContain("within 3000 ms");
        expect(stderr).not.toContain("    at ");
        const lines = stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine);
        expect(lines.find((l) => l.msg === "a worker did not start in time: killing it" && l.pid === hung)).toMatchObject({ worker: id, timeout_ms: 3000 });
        // Every worker it started is gone, the hung one included; its process group is empty.
        expect(seen.size).toBeGreaterThanOrEqual(1);
        for (const pid of seen) expect(alive(pid)).toBe(false);
        expect(groupHasMembers(child.pid)).toBe(false);
      } finally {
        killProcessGroup(child.pid);
        await child.exited;
      }
    } finally {
      upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  test("a worker that hangs while it restarts (SIGSTOP before it serves) is killed past worker_start_timeout, counted, and restarted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-workers-"));
    const f = await startWorkers(dir, { listen: `worker_start_timeout = "6s"` });
    try {
      const first = workerPids(f.gw);
      const victim = first[1]!;
      const hanging = stopNextChild(f.gw.pid, first);
      process.kill(victim, "SIGKILL");
      const hung = await hanging;
      await until("the supervisor kills it", () => logLines(f.gw).some((l) => l.msg === "a worker did not start in time: killing it"), 1000);
      expect(logLines(f.gw).find((l) => l.msg === "a worker did not start in time: killing it")).toMatchObject({ worker: 1, pid: hung, timeout_ms: 6000 });
      await until("its successor serves", () => logLines(f.gw).some((l) => l.msg === "worker restarted" && l.worker === 1));
      const died = logLines(f.gw).filter((l) => l.msg === "a worker died; restarting it");
      expect(died.map((l) => [l.worker, l.pid, l.signal])).toEqual([[1, victim, "SIGKILL"], [1, hung, "SIGKILL"]]);
      expect(alive(hung)).toBe(false);
      const successor = logLines(f.gw).find((l) => l.msg === "worker restarted")!.pid!;
      expect([victim, hung]).not.toContain(successor);
      expect(alive(successor)).toBe(true);
      expect((await f.admin("/-/readyz")).status).toBe(200);
      const metrics = await (await f.admin("/-/metrics")).text();
      expect(metricValue(metrics, "dutygate_worker_restarts_total{", ['worker="1"'])).toEqual([2]);
    } finally {
      await f.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("a worker that cannot start fails the whole start, closed: exit 6 with its reason, no banner", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-workers-"));
    const upstream = startTestUpstream();
    try {
      cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
      appendFileSync(join(dir, "policies", "changes.duty"), "\ngrant nobody_role no_such_duty\n");
      const issuer = await createTestIssuer(dir);
      const config = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir: join(dir, "policies"), listenToml: "workers = 2" });
      const run = await runServeUntilExitOrBanner(config, { cwd: dir, deadlineMs: 60_000 });
      expect(run.exitCode).toBe(6);
      expect(run.stdout).not.toContain("dutygate listening on");
      expect(run.stderr).toContain("error[POLICY_UNAVAILABLE]");
      expect(run.stderr).not.toContain("    at ");
      const failed = run.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine).find((l) => l.msg === "a worker failed to start; stopping the others");
      expect(failed).toMatchObject({ code: 6 });
    } finally {
      upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe("under Deno, as docs/deploy.md runs it (`deno task start`, its permissions)", () => {
  /** `deno task start --config FILE` from the repository, in its own process group, until it exits or prints its banner; then the group is killed. */
  async function denoTaskStart(config: string, whileServing?: (url: string) => Promise<void>): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
    const child = Bun.spawn([join(REPO_ROOT, "node_modules/.bin/deno"), "task", "start", "--config", config], { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe", detached: true, env: { ...process.env, NO_COLOR: "1" } });
    killGroupOnExit(child.pid);
    let stdout = "";
    let stderr = "";
    const drained = Promise.all([drainText(child.stdout, (t) => (stdout += t)), drainText(child.stderr, (t) => (stderr += t))]);
    try {
      await until("deno task start to serve or exit", () => child.exitCode !== null || stdout.includes("dutygate listening on"), 3000);
      if (child.exitCode !== null) await drained;
      const url = /dutygate listening on (https:\/\/\S+)/.exec(stdout)?.[1];
      if (url && whileServing) await whileServing(url);
      return { exitCode: child.exitCode, stdout, stderr };
    } finally {
      killProcessGroup(child.pid);
      await child.exited;
    }
  }

  test("workers = 1 serves with the task's permissions (no --allow-env); workers = 2 is refused, WORKERS_UNSUPPORTED, exit 6", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dutygate-deno-"));
    const upstream = startTestUpstream();
    try {
      const issuer = await createTestIssuer(dir);
      cpSync(SHIPPED_POLICIES, join(dir, "policies"), { recursive: true });
      const one = writeProcessConfig(dir, { upstreamUrl: upstream.url, issuer, policyDir: join(dir, "policies") });
      const token = await issuer.token({ sub: "alice", roles: ["developer"], mfa: true });
      const served = await denoTaskStart(one, async (url) => {
        const res = await fetch(`${url}/changes/deno-1/submit`, { method: "POST", headers: { authorization: `Bearer ${token}` }, tls: { rejectUnauthorized: false } } as RequestInit);
        expect(res.status).toBe(200);
      });
      expect(served.stderr).not.toContain("NotCapable");
      expect(served.stdout).toContain("(operational, node backend)");

      const two = join(dir, "two.toml");
      writeFileSync(two, readFileSync(one, "utf8").replace(/^\[listen\]\n/m, "[listen]\nworkers = 2\n"));
      const refused = await denoTaskStart(two);
      expect(refused.exitCode).toBe(6);
      expect(refused.stderr).toContain("error[WORKERS_UNSUPPORTED]");
      expect(refused.stderr).not.toContain("    at ");
    } finally {
      upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
