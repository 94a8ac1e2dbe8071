// Architecture rules that must not erode: the language stands alone, and the gateway reaches it
// only through dsl/mod.ts.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dir, "..");

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (name.endsWith(".ts")) out.push(full);
  }
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:import|export)[^"']*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1] ?? m[2]!);
}

test("dsl/ imports nothing from src/ and nothing about HTTP, TLS, files or processes", () => {
  const offenders: string[] = [];
  for (const file of sourceFiles(join(root, "dsl")).filter((f) => !f.endsWith(".test.ts"))) {
    for (const spec of imports(file)) {
      if (spec.includes("/src/") || spec.startsWith("../src") || /^(node:)?(fs|http|https|http2|tls|net|child_process|fs\/promises)$/.test(spec) || spec === "bun" || spec.startsWith("hono") && !spec.startsWith("hono/router")) {
        offenders.push(`${relative(root, file)} imports ${spec}`);
      }
    }
  }
  expect(offenders).toEqual([]);
});

test("src/ uses the language only through dsl/mod.ts", () => {
  const offenders: string[] = [];
  for (const file of sourceFiles(join(root, "src")).filter((f) => !f.endsWith(".test.ts"))) {
    for (const spec of imports(file)) {
      if (/(^|\/)dsl\//.test(spec) && !spec.endsWith("dsl/mod.ts")) offenders.push(`${relative(root, file)} imports ${spec}`);
    }
  }
  expect(offenders).toEqual([]);
});
