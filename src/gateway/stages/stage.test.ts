// The stage loop's contract: order, an answer ends the way in, `leave` on the way back for the
// stages that passed on (the last one first), an exception answered 500 with every `leave` told.
import { describe, expect, test } from "bun:test";
import { createLogger } from "../log.ts";
import { RequestState } from "./env.ts";
import { runStages, type Stage } from "./stage.ts";

const connection = { remoteAddress: "127.0.0.1", peerCertificate: null };
const logged: string[] = [];
const log = createLogger("error", (line) => logged.push(line));

/** Runs `stages`, noting each call in order; `after` answers 200 unless given. */
async function run(stages: (trace: string[]) => Stage[], after?: (s: RequestState) => Response | Promise<Response>) {
  const trace: string[] = [];
  const s = new RequestState(new Request("https://gw.test/x"), connection);
  s.requestId = "req-1";
  const response = await runStages(stages(trace), s, after ?? (() => (trace.push("after"), new Response("after", { status: 200 }))), log);
  return { response, body: await response.text(), trace, s };
}

/** A stage that notes its enter and leave and passes on (sync or async, as asked). */
const passing = (name: string, trace: string[], options: { async?: boolean } = {}): Stage => ({
  name,
  enter: options.async ? async () => { trace.push(`enter ${name}`); return undefined; } : () => { trace.push(`enter ${name}`); return undefined; },
  leave: (s) => { trace.push(`leave ${name} ${s.response.status}${s.failed ? " failed" : ""}`); },
});

describe("runStages", () => {
  test("every stage passes on: the stages in order, then after, then leave the last one first", async () => {
    const r = await run((t) => [passing("a", t), passing("b", t, { async: true }), passing("c", t)]);
    expect({ status: r.response.status, body: r.body }).toEqual({ status: 200, body: "after" });
    expect(r.trace).toEqual(["enter a", "enter b", "enter c", "after", "leave c 200", "leave b 200", "leave a 200"]);
  });

  test("a stage that answers ends the way in; only the stages before it leave, and they see its answer", async () => {
    const r = await run((t) => [
      passing("a", t),
      { name: "b", enter: async () => new Response("denied", { status: 403 }), leave: () => { t.push("leave b"); } },
      passing("never", t),
    ]);
    expect({ status: r.response.status, body: r.body }).toEqual({ status: 403, body: "denied" });
    expect(r.trace).toEqual(["enter a", "leave a 403"]);
  });

  test("a synchronous answer is taken as it is", async () => {
    const r = await run((t) => [passing("a", t), { name: "b", enter: () => new Response("sync", { status: 201 }) }]);
    expect({ status: r.response.status, body: r.body, trace: r.trace }).toEqual({ status: 201, body: "sync", trace: ["enter a", "leave a 201"] });
  });

  test.each<[string, (t: string[]) => Stage]>([
    ["a stage that throws", () => ({ name: "boom", enter: () => { throw new Error("boom"); } })],
    ["a stage that rejects", () => ({ name: "boom", enter: () => Promise.reject(new Error("boom")) })],
  ])("%s: answered 500 INTERNAL_ERROR and logged; the stages before it leave, told of the failure", async (_name, failing) => {
    logged.length = 0;
    const r = await run((t) => [passing("a", t), passing("b", t), failing(t), passing("never", t)]);
    expect(r.response.status).toBe(500);
    expect(JSON.parse(r.body)).toMatchObject({ code: "INTERNAL_ERROR", request_id: "req-1" });
    expect(r.trace).toEqual(["enter a", "enter b", "leave b 500 failed", "leave a 500 failed"]);
    expect(r.s.verdict).toEqual({ duty: "", decision: "error" });
    expect(logged.map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ msg: "request failed inside the gateway", request_id: "req-1", error: "boom" })]);
  });

  test("an exception in after is the pipeline's to answer too", async () => {
    const r = await run((t) => [passing("a", t)], () => { throw new Error("route failed"); });
    expect({ status: r.response.status, trace: r.trace }).toEqual({ status: 500, trace: ["enter a", "leave a 500 failed"] });
  });

  test("an exception in a leave: answered 500, and the stages before it still leave", async () => {
    const r = await run((t) => [passing("a", t), { name: "b", enter: () => undefined, leave: async () => { throw new Error("settle failed"); } }]);
    expect({ status: r.response.status, trace: r.trace }).toEqual({ status: 500, trace: ["enter a", "after", "leave a 500 failed"] });
  });

  test("a leave may wait: the answer comes once every leave is done", async () => {
    const r = await run((t) => [
      passing("a", t),
      { name: "b", enter: () => undefined, leave: async () => { await Bun.sleep(5); t.push("leave b done"); } },
    ]);
    expect(r.trace).toEqual(["enter a", "after", "leave b done", "leave a 200"]);
  });
});
