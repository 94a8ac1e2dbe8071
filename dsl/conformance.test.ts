// The conformance corpus (test/conformance/*.toml) run against BOTH evaluators: the reference
// interpreter and the compiled decision trees. Each case states the expected decision; the two
// evaluators must equal it and each other. Cases are data: add a case by editing a TOML file.
import { test, expect, describe } from "bun:test";
import { loadCorpus } from "../test/conformance/corpus.ts";
import { interpretDecision, interpretRoute } from "./mod.ts";
import type { Decision, SeparationCheck } from "./mod.ts";

/** The parts of a decision both evaluators must agree on. */
function essence(d: Decision) {
  return { allow: d.allow, code: d.code, duty: d.duty, decidedBy: d.decidedBy, separations: d.separations.map((s: SeparationCheck) => ({ ...s, duties: [...s.duties] })) };
}

const files = loadCorpus();

describe("conformance corpus", () => {
  test("holds at least 200 cases over several themed files", () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
    expect(files.reduce((n, f) => n + f.cases.length, 0)).toBeGreaterThanOrEqual(200);
  });

  test("case names are unique within a file", () => {
    for (const f of files) {
      const names = f.cases.map((c) => c.name);
      expect({ file: f.file, duplicates: names.filter((n, i) => names.indexOf(n) !== i) }).toEqual({ file: f.file, duplicates: [] });
    }
  });
});

for (const f of files) {
  describe(f.file, () => {
    test.each(f.cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
      const { policy, compiled } = f.policies.get(c.policy)!;
      const interpreted = interpretDecision(policy, c.channel, c.principal, c.request);
      const decided = compiled.decide(c.channel, c.principal, c.request);
      // The two evaluators agree with each other on everything that decides…
      expect(essence(decided)).toEqual(essence(interpreted));
      // …and with the expectation.
      expect({ allow: interpreted.allow, code: interpreted.code as string }).toEqual({ allow: c.allow, code: c.code });
      if (c.duty !== undefined) expect(interpreted.duty).toBe(c.duty);
      if (c.decidedBy !== undefined) {
        if (c.decidedBy === null) expect(interpreted.decidedBy).toBeNull();
        else expect(interpreted.decidedBy ?? "(none)").toStartWith(c.decidedBy);
      }
      if (c.separations !== undefined) {
        expect(interpreted.separations.map((s) => ({ param: s.param, key: s.key, duties: [...s.duties] })))
          .toEqual(c.separations.map((s) => ({ param: s.param, key: s.key, duties: s.duties })));
        for (const [i, s] of c.separations.entries()) if (s.constraint) expect(interpreted.separations[i]!.constraint).toStartWith(s.constraint);
      }
      // Routing on its own: the naive scan and the compiled router find the same duty and params.
      const route = interpretRoute(policy, c.channel, c.request.method, c.request.path);
      expect(compiled.match(c.channel, c.request.method, c.request.path)).toEqual(route);
      if (c.params !== undefined) expect(route?.params ?? null).toEqual(c.params);
      // A denial allows nothing to be forwarded and carries no separations to check.
      if (!interpreted.allow) expect(interpreted.separations).toEqual([]);
    });
  });
}
