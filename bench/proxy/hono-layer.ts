// What the Hono layer itself costs per request: the operational app's shape (the pipeline's
// stages as Hono middleware run in order, one state object in the Context that each stage
// writes to) around stages that do nothing else, against one async function doing the same sets
// and answering the same Response. The difference is routing, the Context, the middleware
// composition: what the pipeline pays for being a Hono app.
//
//   node_modules/.bin/bun bench/proxy/hono-layer.ts   (also printed at the end of `npm run bench:proxy`)
//
// CPU time (process.cpuUsage, user + system) over N requests, rounds interleaved; the median.
import { Hono, type MiddlewareHandler } from "hono";
import { PIPELINE_STAGES } from "../../src/gateway/pipeline.ts";
import { inOrder } from "../../src/gateway/stages/in-order.ts";

const N = 100_000;

type State = Record<string, number>;
type Env = { Bindings: { remoteAddress: string }; Variables: { state: State } };

// As in the pipeline: receive and recordDecision wait for the stages after them (`await next()`),
// the others pass on (`return next()`), dispatch answers.
const WAITS = new Set<string>(["receive", "recordDecision"]);

function honoApp(): Hono<Env> {
  // The operational app has no routes: nothing to match on (the admin app's routes match routePath).
  const app = new Hono<Env>({ getPath: () => "/" });
  app.onError(() => new Response("error", { status: 500 }));
  const stages = PIPELINE_STAGES.map((name, i): MiddlewareHandler<Env> => {
    if (i === 0) return async (c, next) => { c.set("state", { [name]: i }); await next(); };
    if (i === PIPELINE_STAGES.length - 1) return async (c) => (c.get("state")[name] = i, new Response("ok"));
    if (WAITS.has(name)) return async (c, next) => { c.get("state")[name] = i; await next(); };
    return (c, next) => { c.get("state")[name] = i; return next(); };
  });
  app.use(inOrder(...stages));
  return app;
}

/** The same work without Hono: one async function, a plain object for what the stages set. */
async function bare(request: Request, _env: { remoteAddress: string }): Promise<Response> {
  const vars: Record<string, unknown> = {};
  for (const [i, name] of PIPELINE_STAGES.entries()) vars[name] = i;
  if (request.method === "" || vars.receive === undefined) throw new Error("unreachable");
  return new Response("ok");
}

async function cpuPerRequest(handle: (request: Request, env: { remoteAddress: string }) => Response | Promise<Response>, requests: Request[]): Promise<number> {
  const env = { remoteAddress: "127.0.0.1" };
  const start = process.cpuUsage();
  let ok = 0;
  for (const request of requests) if ((await handle(request, env)).status === 200) ok++;
  const used = process.cpuUsage(start);
  if (ok !== requests.length) throw new Error(`${requests.length - ok} requests were not answered 200`);
  return (used.user + used.system) / requests.length;
}

export interface HonoLayerCost {
  /** µs of CPU per request: one function answering. */
  bare: number;
  /** µs of CPU per request: the Hono app of the pipeline's shape. */
  hono: number;
  stages: number;
}

/** Median over `rounds` interleaved rounds of N requests each (`GET /changes/42`, the bench path). */
export async function measureHonoLayer(rounds = 7): Promise<HonoLayerCost> {
  const app = honoApp();
  const fetchApp = (request: Request, env: { remoteAddress: string }) => app.fetch(request, env);
  const requests = Array.from({ length: N }, () => new Request("https://127.0.0.1:8443/changes/42", { headers: { host: "127.0.0.1:8443", authorization: "Bearer x" } }));
  // Warm both paths up (JIT) before measuring.
  await cpuPerRequest(fetchApp, requests.slice(0, 20_000));
  await cpuPerRequest(bare, requests.slice(0, 20_000));
  const b: number[] = [], h: number[] = [];
  for (let r = 0; r < rounds; r++) {
    b.push(await cpuPerRequest(bare, requests));
    h.push(await cpuPerRequest(fetchApp, requests));
  }
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return { bare: median(b), hono: median(h), stages: PIPELINE_STAGES.length };
}

/** The line `bench:proxy` prints. */
export function describeHonoLayer(c: HonoLayerCost): string {
  const added = c.hono - c.bare;
  return `Hono layer (in process, ${c.stages} stages, median of interleaved rounds): app.fetch ${c.hono.toFixed(2)} µs CPU/req, ` +
    `one plain function ${c.bare.toFixed(2)} µs; added by Hono ${added.toFixed(2)} µs/req (target ≤ 2 µs: ${added <= 2 ? "met" : "MISSED"})`;
}

if (import.meta.main) console.log(describeHonoLayer(await measureHonoLayer()));
