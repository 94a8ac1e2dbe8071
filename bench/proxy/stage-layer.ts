// What the layer that runs the pipeline's stages costs per request: the operational channel's
// shape (eight stages that only write the request state; receive, reserve and recordDecision
// with a `leave`, recordDecision and dispatch async, dispatch answering) run by the stage loop
// (`runStages`), against one async function doing the same writes and answering the same
// Response, and against the same stages behind a Hono app's `app.fetch` (one middleware that
// runs the loop: what a Hono entry would add).
//
//   node_modules/.bin/bun bench/proxy/stage-layer.ts   (also printed at the end of `npm run bench:proxy`)
//
// CPU time (process.cpuUsage, user + system) over N requests, rounds interleaved; the median.
import { Hono } from "hono";
import { createLogger } from "../../src/gateway/log.ts";
import { PIPELINE_STAGES } from "../../src/gateway/pipeline.ts";
import { RequestState } from "../../src/gateway/stages/env.ts";
import { runStages, type Stage } from "../../src/gateway/stages/stage.ts";
import type { ConnectionInfo } from "../../src/tls/mod.ts";

const N = 100_000;

// As in the pipeline: these settle something once the request is answered, these wait (async).
const LEAVES = new Set<string>(["receive", "reserve", "recordDecision"]);
const ASYNC = new Set<string>(["recordDecision", "dispatch"]);
const log = createLogger("error", () => {});

const stages: Stage[] = PIPELINE_STAGES.map((name, i): Stage => {
  const mark = (s: RequestState) => { s.upstreamAnswer = i; };
  const enter = i === PIPELINE_STAGES.length - 1
    ? async (s: RequestState) => (mark(s), new Response("ok"))
    : ASYNC.has(name) ? async (s: RequestState) => (mark(s), undefined) : (s: RequestState) => (mark(s), undefined);
  return LEAVES.has(name) ? { name, enter, leave: (s) => { s.verdict = { duty: name, decision: "allow" }; } } : { name, enter };
});
const after = () => new Response("not reached", { status: 404 });

function viaStages(request: Request, connection: ConnectionInfo): Promise<Response> {
  return runStages(stages, new RequestState(request, connection), after, log);
}

function honoApp(): Hono<{ Bindings: ConnectionInfo }> {
  const app = new Hono<{ Bindings: ConnectionInfo }>({ getPath: () => "/" });
  app.use((c) => viaStages(c.req.raw, c.env));
  return app;
}

/** The same work without a layer: one async function, a plain object for what the stages set. */
async function bare(request: Request, connection: ConnectionInfo): Promise<Response> {
  const s = new RequestState(request, connection);
  for (let i = 0; i < PIPELINE_STAGES.length; i++) s.upstreamAnswer = i;
  for (const name of LEAVES) s.verdict = { duty: name, decision: "allow" };
  return new Response("ok");
}

type Handler = (request: Request, connection: ConnectionInfo) => Response | Promise<Response>;

async function cpuPerRequest(handle: Handler, requests: Request[]): Promise<number> {
  const connection = { remoteAddress: "127.0.0.1", peerCertificate: null };
  const start = process.cpuUsage();
  let ok = 0;
  for (const request of requests) if ((await handle(request, connection)).status === 200) ok++;
  const used = process.cpuUsage(start);
  if (ok !== requests.length) throw new Error(`${requests.length - ok} requests were not answered 200`);
  return (used.user + used.system) / requests.length;
}

export interface StageLayerCost {
  /** µs of CPU per request: one function answering. */
  bare: number;
  /** µs of CPU per request: the stage loop. */
  stages: number;
  /** µs of CPU per request: the stage loop behind a Hono app. */
  hono: number;
  count: number;
}

/** Median over `rounds` interleaved rounds of N requests each (`GET /changes/42`, the bench path). */
export async function measureStageLayer(rounds = 7): Promise<StageLayerCost> {
  const app = honoApp();
  const fetchApp: Handler = (request, connection) => app.fetch(request, connection);
  const requests = Array.from({ length: N }, () => new Request("https://127.0.0.1:8443/changes/42", { headers: { host: "127.0.0.1:8443", authorization: "Bearer x" } }));
  const shapes: Array<[keyof Omit<StageLayerCost, "count">, Handler]> = [["bare", bare], ["stages", viaStages], ["hono", fetchApp]];
  // Warm every path up (JIT) before measuring.
  for (const [, handle] of shapes) await cpuPerRequest(handle, requests.slice(0, 20_000));
  const xs = { bare: [] as number[], stages: [] as number[], hono: [] as number[] };
  for (let r = 0; r < rounds; r++) for (const [name, handle] of shapes) xs[name].push(await cpuPerRequest(handle, requests));
  const median = (v: number[]) => v.sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
  return { bare: median(xs.bare), stages: median(xs.stages), hono: median(xs.hono), count: stages.length };
}

/** The line `bench:proxy` prints. */
export function describeStageLayer(c: StageLayerCost): string {
  const added = c.stages - c.bare;
  return `Stage layer (in process, ${c.count} stages, median of interleaved rounds): the stage loop ${c.stages.toFixed(2)} µs CPU/req, ` +
    `one plain function ${c.bare.toFixed(2)} µs, behind a Hono app ${c.hono.toFixed(2)} µs; added by the loop ${added.toFixed(2)} µs/req (target ≤ 2 µs: ${added <= 2 ? "met" : "MISSED"})`;
}

if (import.meta.main) console.log(describeStageLayer(await measureStageLayer()));
