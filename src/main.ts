#!/usr/bin/env bun
// The `gateway` program: runs the command line (src/cli/main.ts) over the process's arguments.
import { SERVING } from "./cli/io.ts";
import { main } from "./cli/main.ts";
import { exitWhenDrained } from "./stdio.ts";

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  // `serve` keeps running on its own; every other command exits with its code once its output
  // has left the process (a pipe's reader may be slower than the command).
  if (code !== SERVING) await exitWhenDrained(code);
}
