// Router agreement: for generated policies whose routes overlap on purpose (a small alphabet of
// literals, params and trailing wildcards), the naive scan (`interpretRoute`) and the compiled
// route tries (`compilePolicy(p).match`) find the same duty and the same params on thousands of
// random paths. Seeds are fixed: a failure names the seed, the pattern list and the path.
import { test, expect, describe } from "bun:test";
import { createRng, generatePolicy, sampleRequests, type Rng } from "../bench/gen-policy.ts";
import { compilePolicy, interpretRoute, loadPolicy } from "./mod.ts";
import type { Channel, CheckedPolicy } from "./mod.ts";

const METHODS = ["GET", "POST"] as const;
const LITERALS = ["a", "b", "c", "v1", "x.y"];

function randomPattern(rng: Rng): string {
  const n = rng.int(5);
  const segs: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    if (r < 0.55) segs.push(rng.pick(LITERALS));
    else segs.push(`:p${i}`);
  }
  if (rng.chance(0.3)) segs.push("*");
  return "/" + segs.join("/");
}

/** A policy of random, deliberately overlapping routes (distinct shapes per method and channel). */
function overlappingPolicy(seed: number): { text: string; patterns: string[] } {
  const rng = createRng(seed);
  const seen = new Set<string>();
  const lines = ["principal { sub: string roles: set<role> }", "role r", "upstream u"];
  const patterns: string[] = [];
  const count = 5 + rng.int(40);
  for (let i = 0; i < count; i++) {
    const pattern = randomPattern(rng);
    const method = rng.pick(METHODS);
    const channel = rng.chance(0.2) ? "admin" : "operational";
    const shape = `${channel} ${method} ${pattern.replace(/:p\d+/g, ":")}`;
    if (seen.has(shape)) continue;
    seen.add(shape);
    patterns.push(`${channel} ${method} ${pattern}`);
    lines.push(`duty d${i} ${method} ${pattern} -> u${channel === "admin" ? " channel admin" : ""}`, `grant r d${i}`);
  }
  return { text: lines.join("\n") + "\n", patterns };
}

function randomPath(rng: Rng): string {
  const n = rng.int(6);
  const segs: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    segs.push(r < 0.7 ? rng.pick(LITERALS) : r < 0.85 ? `id${rng.int(10)}` : r < 0.93 ? "" : rng.pick(["A", "a%2Fb", "v1.2", "~x", "-"]));
  }
  return "/" + segs.join("/");
}

function load(path: string, text: string): CheckedPolicy {
  const r = loadPolicy([{ path, text }], { now: Date.UTC(2026, 0, 1) });
  if (!r.policy) throw new Error(`policy does not load: ${r.diagnostics.map((d) => `${d.code} ${d.message}`).join("; ")}`);
  return r.policy;
}

describe("router agreement", () => {
  test("overlapping random routes (the compiled segment trie vs the interpreter's scan): 200 policies × 100 paths × 2 channels × 2 methods", () => {
    let compared = 0;
    let matched = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const { text, patterns } = overlappingPolicy(seed);
      const policy = load(`routes_${seed}.duty`, text);
      const compiled = compilePolicy(policy);
      const rng = createRng(seed * 7919);
      for (let i = 0; i < 100; i++) {
        const path = randomPath(rng);
        for (const channel of ["operational", "admin"] as Channel[]) {
          for (const method of METHODS) {
            const expected = interpretRoute(policy, channel, method, path);
            const got = compiled.match(channel, method, path);
            if (JSON.stringify(got) !== JSON.stringify(expected)) {
              expect({ seed, channel, method, path, patterns, got }).toEqual({ seed, channel, method, path, patterns, got: expected });
            }
            compared++;
            if (expected) matched++;
          }
        }
      }
    }
    expect(compared).toBe(200 * 100 * 4);
    // The generator must exercise matching, not just misses.
    expect(matched).toBeGreaterThan(compared / 5);
  }, 120_000);

  test("generated realistic policies: sample requests route the same way", () => {
    for (const [size, seed] of [[10, 11], [100, 12], [1000, 13]] as const) {
      const gen = generatePolicy(size, seed);
      const policy = load(gen.path, gen.text);
      const compiled = compilePolicy(policy);
      let matched = 0;
      for (const { channel, request } of sampleRequests(gen, 2000, seed)) {
        const expected = interpretRoute(policy, channel, request.method, request.path);
        expect(compiled.match(channel, request.method, request.path)).toEqual(expected);
        if (expected) matched++;
      }
      expect(matched).toBeGreaterThan(1000);
    }
  }, 120_000);
});
