// What the golden files hold, computed from the sources: rendered diagnostics (text, JSON and
// GitHub annotations) of the broken policies in `broken/` and of the policies in `warnings/` that
// load with warnings only, the results of the mistaken policy tests in `broken-tests/` against the
// shipped policies, and the compiled decision-tree
// description of the shipped policies and of a small generated one. `scripts/update-golden.ts`
// writes these files; `golden.test.ts` compares them. Review a diff of test/golden/ like code.
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { generatePolicy } from "../../bench/gen-policy.ts";
import { compilePolicy, loadPolicy, renderDiagnostic, renderGithubAnnotation, runPolicyTests } from "../../dsl/mod.ts";
import type { PolicySource } from "../../dsl/mod.ts";

export const GOLDEN_DIR = import.meta.dir;
const ROOT = resolve(GOLDEN_DIR, "../..");
/** The checker's "now" for every golden file, so `until` findings never drift with the clock. */
const NOW = Date.UTC(2026, 0, 1);

function readSources(dir: string): PolicySource[] {
  return readdirSync(dir).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: f, text: readFileSync(join(dir, f), "utf8") }));
}

/** Every golden file: path relative to test/golden/ → expected content. */
export function goldenFiles(): Map<string, string> {
  const out = new Map<string, string>();
  for (const source of readSources(join(GOLDEN_DIR, "broken"))) {
    const { policy, diagnostics } = loadPolicy([source], { now: NOW });
    if (policy) throw new Error(`broken/${source.path} loads without errors; golden broken policies must fail`);
    const texts = new Map([[source.path, source.text]]);
    const name = source.path.replace(/\.duty$/, "");
    out.set(`diagnostics/${name}.txt`, diagnostics.map((d) => renderDiagnostic(d, texts)).join("\n\n") + "\n");
    out.set(`diagnostics/${name}.json`, JSON.stringify(diagnostics, null, 2) + "\n");
    out.set(`diagnostics/${name}.github.txt`, diagnostics.map(renderGithubAnnotation).join("\n") + "\n");
  }
  for (const source of readSources(join(GOLDEN_DIR, "warnings"))) {
    const { policy, diagnostics } = loadPolicy([source], { now: NOW });
    if (!policy || diagnostics.length === 0) throw new Error(`warnings/${source.path} must load, with warnings`);
    const texts = new Map([[source.path, source.text]]);
    const name = source.path.replace(/\.duty$/, "");
    out.set(`diagnostics/${name}.txt`, diagnostics.map((d) => renderDiagnostic(d, texts)).join("\n\n") + "\n");
    out.set(`diagnostics/${name}.json`, JSON.stringify(diagnostics, null, 2) + "\n");
    out.set(`diagnostics/${name}.github.txt`, diagnostics.map(renderGithubAnnotation).join("\n") + "\n");
  }
  const shipped = loadPolicy(readSources(join(ROOT, "policies")), { now: NOW });
  if (!shipped.policy) throw new Error("the shipped policies do not load");
  const shippedCompiled = compilePolicy(shipped.policy);
  out.set("compiled/shipped.json", JSON.stringify(shippedCompiled.describe(), null, 2) + "\n");
  const testSources = readdirSync(join(GOLDEN_DIR, "broken-tests")).filter((f) => f.endsWith(".test.toml")).sort();
  for (const file of testSources) {
    const results = runPolicyTests(shippedCompiled, [{ path: file, text: readFileSync(join(GOLDEN_DIR, "broken-tests", file), "utf8") }], { now: NOW });
    const lines = results.map((r) => `${r.file}:${r.line}: ${r.passed ? "ok" : "FAIL"} ${r.name}${r.passed ? "" : `: ${r.failure}`}`);
    out.set(`policy-tests/${file.replace(/\.test\.toml$/, "")}.txt`, lines.join("\n") + "\n");
  }
  const gen = generatePolicy(10, 7);
  const generated = loadPolicy([{ path: gen.path, text: gen.text }], { now: NOW });
  if (!generated.policy) throw new Error("the generated policy does not load");
  out.set("compiled/generated_10.duty", gen.text);
  out.set("compiled/generated_10.json", JSON.stringify(compilePolicy(generated.policy).describe(), null, 2) + "\n");
  return out;
}
