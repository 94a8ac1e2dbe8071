// Architecture rules that must not erode: the language stands alone, the gateway reaches it only
// through dsl/mod.ts, and every folder is entered through its mod.ts.
import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

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

/** The folder a file belongs to, as the boundary rule counts it: `dsl`, `src/<folder>`, or null for src/'s own files. */
function folderOf(path: string): string | null {
  const parts = relative(root, path).split("/");
  if (parts[0] === "dsl") return "dsl";
  if (parts[0] !== "src" || parts.length < 3) return parts[0] === "src" && parts[1] === "main.ts" ? "src/cli" : null;
  return `src/${parts[1]}`;
}

test("a folder of src/ and dsl/ is entered only through its mod.ts", () => {
  // src/main.ts is the command line's entry, of the src/cli layer: it loads each command's
  // handler lazily, so `gateway --version` does not load the gateway.
  const offenders: string[] = [];
  const folders = new Set<string>();
  for (const file of [...sourceFiles(join(root, "src")), ...sourceFiles(join(root, "dsl"))].filter((f) => !/\.(test|case)\.ts$/.test(f))) {
    const from = folderOf(file);
    for (const spec of imports(file)) {
      if (!spec.startsWith(".")) continue;
      const target = resolve(dirname(file), spec);
      const into = folderOf(target);
      if (into === null || into === from) continue;
      folders.add(into);
      if (relative(root, target) !== `${into}/mod.ts`) offenders.push(`${relative(root, file)} imports ${spec}`);
    }
  }
  expect(offenders).toEqual([]);
  // The rule is checked over the folders that are imported: most of them.
  expect(folders.size).toBeGreaterThanOrEqual(10);
});

test("every folder of src/ has a mod.ts", () => {
  const missing = readdirSync(join(root, "src")).filter((name) => statSync(join(root, "src", name)).isDirectory() && !existsSync(join(root, "src", name, "mod.ts")));
  expect(missing).toEqual([]);
});

test("nothing outside src/cli/ imports the command line (the engines know nothing of it)", () => {
  const offenders: string[] = [];
  for (const file of sourceFiles(join(root, "src")).filter((f) => !/\.(test|case)\.ts$/.test(f))) {
    if (folderOf(file) === "src/cli") continue;
    for (const spec of imports(file)) {
      if (spec.startsWith(".") && folderOf(resolve(dirname(file), spec)) === "src/cli") offenders.push(`${relative(root, file)} imports ${spec}`);
    }
  }
  expect(offenders).toEqual([]);
});
