import { expect, test } from "bun:test";
import { EXIT, memoryIo } from "./io.ts";
import { HELP, main } from "./main.ts";

// Regression: `gateway --help` printed two lines of source code (`return SERVING;`, `},`) after
// the `play` synopsis.
test("--help is synopses, descriptions and exit codes, no source code", async () => {
  const io = memoryIo();
  expect(await main(["--help"], io)).toBe(EXIT.ok);
  expect(io.stdout.join("\n")).toBe(HELP);
  const strays = HELP.split("\n").filter((line) => /^\s*(return\b|\},?$|\{$)/.test(line));
  expect(strays).toEqual([]);
  // Every command of the dispatch table has its synopsis.
  for (const command of ["serve", "check", "explain", "query", "fmt", "play", "lsp", "keygen", "keys", "sign", "verify", "audit verify", "ledger", "init"]) {
    expect(HELP).toContain(`  gateway ${command} `);
  }
});
