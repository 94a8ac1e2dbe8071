// Policy files on disk → language sources. The language never touches files itself.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import type { PolicySource } from "../../dsl/mod.ts";

export interface PolicyFiles {
  policies: PolicySource[];
  tests: PolicySource[];
}

/** Splits bundle files (relative paths + text) into `.duty` sources and `*.test.toml` policy tests. */
export function classifyPolicyFiles(files: ReadonlyArray<{ path: string; text: string }>, displayDir: string): PolicyFiles {
  const shown = (p: string) => (displayDir === "" || displayDir === "." ? p : `${displayDir.replace(/\/+$/, "")}/${p}`);
  const policies: PolicySource[] = [];
  const tests: PolicySource[] = [];
  for (const f of [...files].sort((a, b) => a.path.localeCompare(b.path))) {
    if (f.path.endsWith(".duty")) policies.push({ path: shown(f.path), text: f.text });
    else if (f.path.endsWith(".test.toml")) tests.push({ path: shown(f.path), text: f.text });
  }
  return { policies, tests };
}

/** Reads every file under a policy directory (recursively; names starting with `.` skipped). */
export function readPolicyDirectory(dir: string): Array<{ path: string; text: string }> {
  const out: Array<{ path: string; text: string }> = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith(".")) continue;
      const full = join(d, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile() && (name.endsWith(".duty") || name.endsWith(".test.toml"))) {
        out.push({ path: relative(dir, full).split(sep).join("/"), text: readFileSync(full, "utf8") });
      }
    }
  };
  walk(dir);
  return out;
}
