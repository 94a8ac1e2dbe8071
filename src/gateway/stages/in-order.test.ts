// inOrder keeps Hono's middleware contract: run through a real Hono app.
import { describe, expect, test } from "bun:test";
import { Hono, type MiddlewareHandler } from "hono";
import { inOrder } from "./in-order.ts";

type Env = { Variables: { seen: string[] } };

function appOf(...stages: MiddlewareHandler<Env>[]): Hono<Env> {
  const app = new Hono<Env>();
  app.onError((e) => new Response(`app error: ${e.message}`, { status: 500 }));
  app.use(async (c, next) => { c.set("seen", []); await next(); });
  app.use(inOrder(...stages));
  app.get("/route", (c) => c.text(`route after ${c.get("seen").join(",")}`));
  return app;
}
const mark = (name: string): MiddlewareHandler<Env> => (c, next) => { c.get("seen").push(name); return next(); };

describe("inOrder", () => {
  test("stages run in order; a stage's answer becomes c.res before the stages before it look", async () => {
    const statuses: number[] = [];
    const app = appOf(
      async (c, next) => { await next(); statuses.push(c.res.status); },
      mark("a"),
      async (c, next) => { await next(); statuses.push(c.res.status); },
      (c) => Promise.resolve(c.text(`answered after ${c.get("seen").join(",")}`, 201)),
    );
    const res = await app.request("/anything");
    expect({ status: res.status, body: await res.text() }).toEqual({ status: 201, body: "answered after a" });
    expect(statuses).toEqual([201, 201]);
  });

  test("when every stage passes on, the app's routes answer", async () => {
    const res = await appOf(mark("a"), mark("b")).request("/route");
    expect(await res.text()).toBe("route after a,b");
  });

  test("a stage that answers stops the stages after it", async () => {
    const res = await appOf(mark("a"), async (c) => c.text("stopped", 403), mark("never")).request("/route");
    expect({ status: res.status, body: await res.text() }).toEqual({ status: 403, body: "stopped" });
  });

  test("an exception rejects the next() of every stage before it, which may answer it", async () => {
    const released: string[] = [];
    const app = appOf(
      async (c, next) => {
        try {
          await next();
        } catch (e) {
          c.res = undefined;
          c.res = new Response(`answered: ${(e as Error).message}`, { status: 500 });
        }
      },
      async (_c, next) => { try { await next(); } finally { released.push("held"); } },
      () => { throw new Error("boom"); },
    );
    const res = await app.request("/x");
    expect({ status: res.status, body: await res.text() }).toEqual({ status: 500, body: "answered: boom" });
    expect(released).toEqual(["held"]);
  });

  test("an exception nobody answers reaches the app's error handler", async () => {
    const res = await appOf(mark("a"), () => Promise.reject(new Error("unhandled"))).request("/x");
    expect({ status: res.status, body: await res.text() }).toEqual({ status: 500, body: "app error: unhandled" });
  });
});
