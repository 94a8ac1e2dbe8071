import { test, expect, describe } from "bun:test";
import { parseTraceparent, traceContextFor } from "./trace-context.ts";

describe("parseTraceparent", () => {
  test.each([
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true],
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true],
    ["01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", true], // later versions may add fields
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false],
    ["ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false],
    ["00-00000000000000000000000000000000-00f067aa0ba902b7-01", false],
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false],
    ["00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false],
    ["00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", false],
    ["", false],
  ])("%p valid: %p", (value, valid) => {
    expect(parseTraceparent(value) !== null).toBe(valid);
  });
});

describe("traceContextFor", () => {
  test("keeps a valid context", () => {
    const ctx = traceContextFor(new Headers({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "a=b" }));
    expect(ctx).toEqual({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "a=b", traceId: "4bf92f3577b34da6a3ce929d0e0e4736", started: false });
  });

  test("drops an oversized tracestate", () => {
    const ctx = traceContextFor(new Headers({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "a=" + "b".repeat(600) }));
    expect(ctx.tracestate).toBeNull();
  });

  test("starts distinct valid traces", () => {
    const a = traceContextFor(new Headers());
    const b = traceContextFor(new Headers({ traceparent: "junk" }));
    expect(a.started && b.started).toBe(true);
    expect(parseTraceparent(a.traceparent)?.traceId).toBe(a.traceId);
    expect(a.traceId).not.toBe(b.traceId);
  });

  test("new ids stay valid and distinct across many draws of the random pool", () => {
    const traces = new Set<string>();
    const parents = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const ctx = traceContextFor(new Headers());
      const parsed = parseTraceparent(ctx.traceparent);
      expect(parsed).not.toBeNull();
      expect(ctx.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      traces.add(parsed!.traceId);
      parents.add(parsed!.parentId);
    }
    expect(traces.size).toBe(2000);
    expect(parents.size).toBe(2000);
  });
});
