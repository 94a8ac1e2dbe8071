// Loaded by `bun test` before any test file (bunfig.toml `preload`). `bun test` ends without an
// `exit` event, so what must happen after a failed or timed-out test happens here, once, after
// the last test of the run: the process groups tests started are killed, their temp dirs removed.
import { afterAll } from "bun:test";
import { killRegisteredGroups } from "./process-group.ts";
import { removeTempDirs } from "./temp-dir.ts";

afterAll(() => {
  killRegisteredGroups();
  removeTempDirs();
});
