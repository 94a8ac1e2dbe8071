// The upstream hop alone, step by step: CPU per request of one process that sends GET requests to
// the bench upstream over loopback and reads the answers, 16 in flight, closed loop, no TLS and no
// server side. Each step adds one layer to the one before, interleaved over rounds:
//   raw     — 16 kept-alive `Bun.connect` sockets, a prepared request, the answer's end found by
//             the open-loop client's framing check (lib.ts `responseLength`); nothing parsed beyond
//             that (a floor for any client on this runtime)
//   head    — the same sockets, but each request's head serialised from field pairs and each
//             answer's head parsed, by the pool's own functions (`requestHead`, `parseResponseHead`)
//   pool    — the gateway's HTTP/1.1 pool (src/http/forward-http1.ts) as forwardToUpstream calls
//             it: connection taken and given back, the exchange, its promise, the abort handle
//   forward — `forwardToUpstream` over the pool, as the gateway calls it: the upstream fields
//             (x-forwarded-*, trace context, identity header), the judged-path check, the deadline
//             sweep, and the client's `Response` (one inbound `Request` reused, no server side)
//   fetch   — the runtime's fetch (its own client thread; counted, as all threads are)
// and, side by side, `forwardToUpstream` with each client where the pool has taken over from fetch:
//   forward-fetch — the `forward` step over fetch (`client: "fetch"`)
//   post-pool, post-fetch — a POST with a 1 KiB body (a new inbound `Request` per call, as
//             Bun.serve makes one), over the pool and over fetch
//   tls-pool, tls-fetch — the `forward` GET to an `https://` upstream (the same upstream behind
//             TLS, its certificate from a CA made for the run and trusted via NODE_EXTRA_CA_CERTS)
//
//   node_modules/.bin/bun bench/proxy/hop.ts [--rounds 5] [--requests 20000] [--modes raw,head,pool,forward,fetch,…] [--no-pin]
//                                            [--baseline DIR]
//
// `--baseline DIR`: the same steps from another checkout of dutygate (DIR holds its src/ and
// bench/; e.g. `git worktree add /tmp/before <commit>`), run in the same rounds, interleaved with
// this one's, so a before/after comparison shares every moment of the machine's load.
//
// Each measurement runs in a fresh child process (pinned to CPU 1; the upstream to CPU 0), and
// reports user+system CPU time per request of that process, all its threads included.
import { join } from "node:path";
import { forwardToUpstream } from "../../src/http/forward.ts";
import { createCa, issueCertificate } from "../../test/support/pki.ts";
import { tempDir } from "../../test/support/temp-dir.ts";
import { Http1Abort, http1PoolFor, parseResponseHead, requestHead } from "../../src/http/forward-http1.ts";
import { bounded, cpuBudget, flag, median, responseLength, startProcess, stopProcess, type Started } from "./lib.ts";

const IN_FLIGHT = 16;
const mode = flag("mode", "");
// The steps that run `forwardToUpstream`, by the client, method and scheme each one uses.
const FORWARD_MODES: Record<string, { client: "pool" | "fetch"; post: boolean; tls: boolean }> = {
  forward: { client: "pool", post: false, tls: false },
  "forward-fetch": { client: "fetch", post: false, tls: false },
  "post-pool": { client: "pool", post: true, tls: false },
  "post-fetch": { client: "fetch", post: true, tls: false },
  "tls-pool": { client: "pool", post: false, tls: true },
  "tls-fetch": { client: "fetch", post: false, tls: true },
};

if (mode !== "") {
  // Child: one measurement.
  const port = Number(flag("port", "0"));
  const requests = bounded(flag("requests", "20000"), 1000, 1_000_000);
  const url = `http://127.0.0.1:${port}/changes/42`;
  const origin = `http://127.0.0.1:${port}`;
  let one: () => Promise<void>;
  if (mode === "fetch") {
    one = async () => {
      const r = await fetch(url, { decompress: false } as RequestInit);
      await r.arrayBuffer();
    };
  } else if (mode === "pool") {
    one = async () => {
      const r = await http1PoolFor(origin).request({ method: "GET", target: "/changes/42", headers: [["accept", "*/*"]], abort: new Http1Abort(), connectTimeoutMs: 2000 });
      if (r.body !== null && !(r.body instanceof Uint8Array)) await new Response(r.body).arrayBuffer();
    };
  } else if (FORWARD_MODES[mode] !== undefined) {
    const { client, post, tls } = FORWARD_MODES[mode]!;
    const url = tls ? `https://localhost:${flag("tls-port", "0")}` : origin;
    const upstream = { name: "changes", url, timeoutMs: 10_000, connectTimeoutMs: 2000, client };
    // What Bun.serve hands the gateway for `GET /changes/42` from wrk, reused for every call.
    const fields = { host: "127.0.0.1:8443", authorization: "Bearer x.y.z", "user-agent": "wrk" };
    const inbound = new Request(`https://127.0.0.1:8443/changes/42`, { headers: fields });
    // A POST's body is read once: each call gets a new inbound request around the same 1 KiB.
    const payload = new TextEncoder().encode(JSON.stringify({ note: "x".repeat(1000) }).slice(0, 1024));
    const postFields = { ...fields, "content-type": "application/json", "content-length": String(payload.byteLength) };
    const identityToken = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsiLCJ0eXAiOiJKV1QifQ." + "e".repeat(300) + "." + "s".repeat(86);
    const stripHeaders = ["x-forwarded-user", "x-remote-user", "x-user", "authorization"];
    one = async () => {
      const request = post ? new Request(`https://127.0.0.1:8443/changes/42`, { method: "POST", headers: postFields, body: payload }) : inbound;
      const r = await forwardToUpstream(request, {
        upstream, path: "/changes/42", query: "", requestId: crypto.randomUUID(), clientIp: "127.0.0.1", host: "127.0.0.1:8443",
        identityHeader: "x-dutygate-identity", identityToken, stripHeaders, maxBodyBytes: 1 << 20, client,
      });
      if (r.status !== 200) throw new Error(`${mode} answered ${r.status}`);
      // The client's side of the answer: read as Bun.serve would send it on.
      if (r.body !== null) await r.arrayBuffer();
    };
  } else if (mode === "raw" || mode === "head") {
    const prepared = Buffer.from(`GET /changes/42 HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\naccept: */*\r\n\r\n`);
    const fields: Array<[string, string]> = [["accept", "*/*"]];
    const authority = `127.0.0.1:${port}`;
    const parse = mode === "head";
    const sockets: Array<{ write(b: Uint8Array | string): number }> = [];
    const waiting: Array<(() => void) | null> = [];
    const free: number[] = [];
    for (let i = 0; i < IN_FLIGHT; i++) {
      let pending: Buffer = Buffer.alloc(0);
      sockets.push(await Bun.connect({
        hostname: "127.0.0.1", port,
        socket: {
          data(_s, chunk) {
            pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
            let length: number;
            if (parse) {
              const end = pending.indexOf("\r\n\r\n");
              if (end < 0) return;
              const head = parseResponseHead(pending.toString("latin1", 0, end), authority);
              if (head.framing.kind !== "length") throw new Error("the upstream sent a response without a length");
              length = end + 4 + head.framing.length;
              if (pending.length < length) return;
            } else {
              length = responseLength(pending).length;
              if (length === 0) return;
              if (length < 0) throw new Error("the upstream sent a response without a length");
            }
            pending = pending.subarray(length);
            const done = waiting[i]!;
            waiting[i] = null;
            done();
          },
        },
      }));
      free.push(i);
    }
    one = () => new Promise<void>((resolve) => {
      const i = free.pop()!;
      waiting[i] = () => { free.push(i); resolve(); };
      sockets[i]!.write(parse ? requestHead("GET", "/changes/42", authority, fields) : prepared);
    });
  } else {
    throw new Error(`--mode must be raw, head, pool, fetch or one of ${Object.keys(FORWARD_MODES).join(", ")}, not \`${mode}\``);
  }
  const run = async (n: number) => {
    let left = n;
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => { while (left-- > 0) await one(); }));
  };
  await run(2000);
  const before = process.cpuUsage();
  const started = performance.now();
  await run(requests);
  const cpu = process.cpuUsage(before);
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ mode, cpuUs: (cpu.user + cpu.system) / requests, userUs: cpu.user / requests, systemUs: cpu.system / requests, rps: requests / seconds }));
  process.exit(0);
}

// Parent: start the upstream, then interleave the clients over rounds.
const rounds = bounded(flag("rounds", "5"), 1, 50);
const requests = bounded(flag("requests", "20000"), 1000, 1_000_000);
const budget = cpuBudget(!process.argv.includes("--no-pin"));
const bun = process.execPath;
const here = import.meta.dir;
const started: Started[] = [];
const ALL_MODES = ["raw", "head", "pool", "forward", "fetch", "forward-fetch", "post-pool", "post-fetch", "tls-pool", "tls-fetch"];
const modes = flag("modes", ALL_MODES.join(",")).split(",").filter((m) => ALL_MODES.includes(m));
const baseline = flag("baseline", "");
const trees = baseline === "" ? [{ label: "", dir: join(here, "..", "..") }] : [{ label: "before", dir: baseline }, { label: "after", dir: join(here, "..", "..") }];
const rows = trees.flatMap((t) => modes.map((m) => ({ mode: m, tree: t, name: t.label === "" ? m : `${m} (${t.label})` })));
const results = new Map<string, Array<{ cpuUs: number; userUs: number; systemUs: number; rps: number }>>(rows.map((row) => [row.name, []]));
try {
  const upstream = await startProcess("upstream", [bun, join(here, "upstream.ts")], { cpu: budget?.loadCpu, ready: /^listening \d+/ });
  started.push(upstream);
  const port = /^listening (\d+)/.exec(upstream.lines.find((l) => l.startsWith("listening"))!)![1]!;
  // The same upstream behind TLS, for the tls-* steps: a CA made for this run, trusted by the
  // clients the way an operator trusts one (NODE_EXTRA_CA_CERTS, read by the runtime at start).
  let tlsPort = "0";
  const clientEnv: Record<string, string> = {};
  if (modes.some((m) => FORWARD_MODES[m]?.tls)) {
    const dir = tempDir("dutygate-hop-");
    const ca = await createCa(dir, "hop-ca");
    const certificate = await issueCertificate(dir, ca, { commonName: "localhost", dnsNames: ["localhost"], fileName: "upstream" });
    const secure = await startProcess("tls-upstream", [bun, join(here, "upstream.ts"), "0", "--tls", certificate.certFile, certificate.keyFile], { cpu: budget?.loadCpu, ready: /^listening \d+/ });
    started.push(secure);
    tlsPort = /^listening (\d+)/.exec(secure.lines.find((l) => l.startsWith("listening"))!)![1]!;
    clientEnv.NODE_EXTRA_CA_CERTS = ca.certFile;
  }
  for (let r = 0; r < rounds; r++) {
    for (const { mode: m, tree, name } of rows) {
      const child = Bun.spawn([...(budget ? ["taskset", "-c", budget.serverCpu] : []), bun, join(tree.dir, "bench", "proxy", "hop.ts"), "--mode", m, "--port", port, "--tls-port", tlsPort, "--requests", String(requests)], { stdout: "pipe", stderr: "inherit", env: { ...process.env, ...clientEnv } });
      const timer = setTimeout(() => child.kill(), 120_000);
      const out = await new Response(child.stdout).text();
      clearTimeout(timer);
      if ((await child.exited) !== 0) throw new Error(`hop client ${name} failed`);
      results.get(name)!.push(JSON.parse(out.trim().split("\n").pop()!));
      console.error(`round ${r + 1}/${rounds}: ${name} ${results.get(name)!.at(-1)!.cpuUs.toFixed(1)} µs/req`);
    }
  }
} finally {
  for (const s of started.reverse()) await stopProcess(s);
}

console.log(`\nupstream hop, ${IN_FLIGHT} in flight, ${requests} requests per run, medians of ${rounds} interleaved rounds${budget ? "; client on CPU 1, upstream on CPU 0" : ""}`);
const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
console.log(`load average at the end: ${load}; Bun ${Bun.version}`);
console.log("| step | CPU µs/req | user | system | vs raw | req/s |");
console.log("|---|---|---|---|---|---|");
for (const { mode: m, tree, name } of rows) {
  const floor = median(results.get(tree.label === "" ? "raw" : `raw (${tree.label})`)?.map((x) => x.cpuUs) ?? []);
  const runs = results.get(name)!;
  const cpu = median(runs.map((x) => x.cpuUs));
  const f = (k: "cpuUs" | "userUs" | "systemUs") => median(runs.map((x) => x[k])).toFixed(1);
  const extra = Number.isFinite(floor) && m !== "raw" ? `+${(cpu - floor).toFixed(1)}` : "";
  console.log(`| ${name} | ${f("cpuUs")} | ${f("userUs")} | ${f("systemUs")} | ${extra} | ${median(runs.map((x) => x.rps)).toFixed(0)} |`);
}

// The pool against fetch for the same request, round by round (each round ran both back to back).
const PAIRS: Array<[string, string, string]> = [["GET, http", "forward", "forward-fetch"], ["POST 1 KiB, http", "post-pool", "post-fetch"], ["GET, https", "tls-pool", "tls-fetch"]];
const pairRows = trees.flatMap((t) => PAIRS.map(([what, pool, fetch]) => {
  const at = (m: string) => results.get(t.label === "" ? m : `${m} (${t.label})`);
  return { what: t.label === "" ? what : `${what} (${t.label})`, pool: at(pool), fetch: at(fetch) };
})).filter((p) => p.pool !== undefined && p.fetch !== undefined && p.pool.length > 0);
if (pairRows.length > 0) {
  console.log("\n| request | pool CPU / fetch CPU, per round | median |");
  console.log("|---|---|---|");
  for (const { what, pool, fetch } of pairRows) {
    const ratios = pool!.map((p, i) => p.cpuUs / fetch![i]!.cpuUs);
    console.log(`| ${what} | ${ratios.map((r) => r.toFixed(2)).join(", ")} | ${median(ratios).toFixed(2)} |`);
  }
}
