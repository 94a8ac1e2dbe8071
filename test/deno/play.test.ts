// Deno parity for `gateway play`: the playground's server, from the same source, on loopback.
//
//   node_modules/.bin/deno task test:deno
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { playSource } from "../../src/cli/play.ts";
import { startPlayServer } from "../../src/play/server.ts";

const POLICIES = join(import.meta.dirname!, "..", "..", "policies");

test("play: serves the page and checks and explains the shipped policy under Deno", async () => {
  const source = playSource(POLICIES);
  const server = await startPlayServer({ source, host: "127.0.0.1", port: 0 });
  try {
    assert.match(await (await fetch(server.url)).text(), /<title>dutygate playground<\/title>/);
    const grammar = (await (await fetch(`${server.url}duty.tmLanguage.json`)).json()) as { scopeName: string };
    assert.equal(grammar.scopeName, "source.duty");
    const files = source.read();
    const post = async (path: string, body: unknown) =>
      (await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json() as Promise<Record<string, any>>;
    const analysis = await post("api/analyze", { files });
    assert.equal(analysis.ok, true);
    assert.ok(analysis.tests.length > 0 && analysis.tests.every((t: { passed: boolean }) => t.passed));
    const explained = await post("api/explain", { files, principal: { sub: "alice", roles: ["developer"], mfa: true, team: "core" }, request: "POST /changes/42/submit" });
    assert.equal(explained.explanation.decision.decidedBy, "grant:changes.duty:10:1");
  } finally {
    await server.close();
  }
});
