// The playground's server in-process (`app.request()`): its assets from the binary, the API over
// the language, and the guards of a page on loopback (Host, content type, body size). The page
// itself runs in a real browser in test/browser/play.test.ts.
import { afterEach, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { GatewayError } from "../errors.ts";
import { parsePlayArgs, playSource } from "../cli/play.ts";
import { renderPlayEmbeddedModule, PLAY_EMBEDDED_MODULE_PATH } from "./generate.ts";
import { createPlayApp, isLoopbackHost, startPlayServer, type PlayServer } from "./server.ts";

const ROOT = resolve(import.meta.dir, "..", "..");
const shipped = readdirSync(join(ROOT, "policies")).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: f, text: readFileSync(join(ROOT, "policies", f), "utf8") }));
const shippedTests = readdirSync(join(ROOT, "policies")).filter((f) => f.endsWith(".test.toml")).sort().map((f) => ({ path: f, text: readFileSync(join(ROOT, "policies", f), "utf8") }));
const source = { label: "policies/", read: () => [...shipped, ...shippedTests] };
const HOST = "127.0.0.1:8800";
const app = createPlayApp(source, () => new Set([HOST, "localhost:8800"]));
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  app.request(path, { method: "POST", headers: { host: HOST, "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
const get = (path: string, host = HOST) => app.request(path, { headers: { host } });

const servers: PlayServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

test("embedded.ts is up to date with src/play/page/ and the grammar (fix: bun src/play/generate.ts)", () => {
  expect(readFileSync(PLAY_EMBEDDED_MODULE_PATH, "utf8")).toBe(renderPlayEmbeddedModule());
});

test("the page and its assets come from the binary, the page under a policy that loads only its own files", async () => {
  const page = await get("/");
  expect(page.status).toBe(200);
  expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
  expect(page.headers.get("content-security-policy")).toContain("default-src 'none'; script-src 'self'");
  const html = await page.text();
  expect(html).toContain('<script type="module" src="/app.js"></script>');
  // Every asset the page names is served; none is on another host.
  const named = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  expect(named.sort()).toEqual(["/app.js", "/style.css"]);
  for (const path of ["/app.js", "/highlight.js", "/style.css", "/duty.tmLanguage.json"]) expect((await get(path)).status).toBe(200);
  expect(await (await get("/duty.tmLanguage.json")).json()).toEqual(JSON.parse(readFileSync(join(ROOT, "editors/vscode/syntaxes/duty.tmLanguage.json"), "utf8")));
  const scripts = (await (await get("/app.js")).text()) + (await (await get("/highlight.js")).text());
  expect(scripts).not.toMatch(/https?:\/\//);
});

test("the files of the policy directory, as the page starts from them", async () => {
  const body = await (await get("/api/files")).json();
  expect(body).toEqual({ label: "policies/", files: [...shipped, ...shippedTests] });
});

test("analyze: a broken policy gives the checker's diagnostics with their spans and rendered text", async () => {
  const files = shipped.map((f) => (f.path === "changes.duty" ? { ...f, text: f.text + "grant developer approve_chnge\n" } : f));
  const res = await post("/api/analyze", { files });
  expect(res.status).toBe(200);
  const body = await res.json();
  expect(body.ok).toBe(false);
  expect(body.matrix).toBeNull();
  expect(body.diagnostics.map((d: { code: string; span: { file: string; line: number; col: number } }) => [d.code, d.span.file, d.span.line, d.span.col])).toEqual([["E_UNKNOWN_DUTY", "changes.duty", 21, 17]]);
  expect(body.diagnostics[0].help).toBe("did you mean `approve_change`?");
  expect(body.diagnostics[0].rendered).toStartWith("changes.duty:21:17: error[E_UNKNOWN_DUTY]: unknown duty `approve_chnge`\n");
});

test("analyze: a good policy gives the role × duty matrix and the reachability table", async () => {
  const body = await (await post("/api/analyze", { files: shipped })).json();
  expect(body.ok).toBe(true);
  expect(body.matrix.cells.developer.submit_change).toEqual([{ rule: "grant:changes.duty:10:1", when: null, until: null }]);
  expect(body.matrix.cells.sre.deploy_change).toEqual([{ rule: "grant:changes.duty:14:1", when: "principal.mfa", until: "2027-12-31" }]);
  expect(body.matrix.duties.find((d: { name: string }) => d.name === "deploy_change").forbids).toEqual(["forbid:changes.duty:17:1"]);
  expect(body.reachability.map((r: { constraint: string; sides: string[] }) => `${r.constraint} ${r.sides.join("/")}`)).toContain("separate:changes.duty:20:1 submit_change/approve_change");
});

test("analyze runs the policy tests: all pass on the shipped policy; a grant moved to another role fails the test that needs it", async () => {
  const good = await (await post("/api/analyze", { files: [...shipped, ...shippedTests] })).json();
  expect(good.tests.length).toBeGreaterThan(20);
  expect(good.tests.filter((t: { passed: boolean }) => !t.passed)).toEqual([]);
  const moved = shipped.map((f) => (f.path === "changes.duty" ? { ...f, text: f.text.replace("grant developer submit_change", "grant reviewer submit_change") } : f));
  const bad = await (await post("/api/analyze", { files: [...moved, ...shippedTests] })).json();
  const failed = bad.tests.filter((t: { passed: boolean }) => !t.passed);
  expect(failed.map((t: { file: string; name: string }) => `${t.file}: ${t.name}`)).toContain("changes.test.toml: developer submits a change");
  // The failure points into that test's [[test]] table.
  const lines = shippedTests.find((f) => f.path === "changes.test.toml")!.text.split("\n");
  const nameAt = lines.findIndex((l) => l.includes('name = "developer submits a change"'));
  const [from, to] = [lines.lastIndexOf("[[test]]", nameAt) + 1, lines.indexOf("[[test]]", nameAt) + 1];
  const at = failed.find((t: { name: string }) => t.name === "developer submits a change").line;
  expect(at >= from && at < to).toBe(true);
  // A policy with errors runs no test.
  expect((await (await post("/api/analyze", { files: [{ path: "a.duty", text: "role" }, ...shippedTests] })).json()).tests).toBeNull();
});

test("explain: the decision with its reasons and where the deciding rule is written, from explainRequest", async () => {
  const alice = { sub: "alice", roles: ["developer"], mfa: true, team: "core" };
  const allow = await (await post("/api/explain", { files: shipped, principal: alice, request: "POST /changes/42/submit" })).json();
  expect(allow.ok).toBe(true);
  expect(allow.explanation.decision).toMatchObject({ allow: true, code: "ALLOW", decidedBy: "grant:changes.duty:10:1" });
  expect(allow.decidedBy).toMatchObject({ file: "changes.duty", line: 10, col: 1, endLine: 10 });
  expect(shipped.find((f) => f.path === "changes.duty")!.text.slice(allow.decidedBy.start, allow.decidedBy.end)).toBe("grant developer submit_change");
  expect(allow.explanation.evaluatorsAgree).toBe(true);
  const freeze = await (await post("/api/explain", { files: shipped, principal: { ...alice, sub: "carol", roles: ["deployer"] }, request: "POST /changes/42/deploy", headers: { "X-Freeze": "1" } })).json();
  expect(freeze.explanation.decision).toMatchObject({ allow: false, code: "DENY_FORBID", decidedBy: "forbid:changes.duty:17:1" });
  // The time field: the SRE's temporary exception ends with 2027.
  const erin = { sub: "erin", roles: ["sre"], mfa: true, team: "ops" };
  const during = await (await post("/api/explain", { files: shipped, principal: erin, request: "POST /changes/42/deploy", time: "2026-11-22T10:00:00Z" })).json();
  const after = await (await post("/api/explain", { files: shipped, principal: erin, request: "POST /changes/42/deploy", time: "2028-01-01T00:00:00Z" })).json();
  expect([during.explanation.decision.code, after.explanation.decision.code]).toEqual(["ALLOW", "DENY_NO_GRANT"]);
  const noRoute = await (await post("/api/explain", { files: shipped, principal: alice, request: "DELETE /nowhere" })).json();
  expect(noRoute).toMatchObject({ ok: true, decidedBy: null, duty: null });
  expect(noRoute.explanation.decision.code).toBe("DENY_NO_ROUTE");
});

test("explain: a policy with errors, a bad principal and a bad request are answered with codes", async () => {
  const broken = await (await post("/api/explain", { files: [{ path: "a.duty", text: "role" }], principal: {}, request: "GET /" })).json();
  expect(broken).toMatchObject({ ok: false, code: "PLAY_POLICY_ERRORS" });
  expect(broken.diagnostics.length).toBeGreaterThan(0);
  const badPrincipal = await post("/api/explain", { files: shipped, principal: { sub: "x", roles: ["developer"], mfa: "yes", team: "t" }, request: "GET /changes" });
  expect(badPrincipal.status).toBe(400);
  expect((await badPrincipal.json()).code).toStartWith("PRINCIPAL_");
  const badRequest = await post("/api/explain", { files: shipped, principal: { sub: "x", roles: [] }, request: "fetch me /changes" });
  expect(await badRequest.json()).toMatchObject({ ok: false, code: "EXPLAIN_BAD_REQUEST" });
});

test("the API refuses malformed bodies, other content types, other hosts and large bodies", async () => {
  expect(await (await post("/api/analyze", "{not json")).json()).toMatchObject({ code: "PLAY_BAD_FILES" });
  expect((await post("/api/analyze", { files: [{ path: "x.txt", text: "" }] })).status).toBe(400);
  expect((await post("/api/analyze", { files: [{ path: "a.duty", text: "" }, { path: "a.duty", text: "" }] })).status).toBe(400);
  // A form post from another site (no JSON content type) is refused before anything runs.
  const form = await post("/api/analyze", "files=x", { "content-type": "application/x-www-form-urlencoded" });
  expect({ status: form.status, code: (await form.json()).code }).toEqual({ status: 415, code: "PLAY_NOT_JSON" });
  // DNS rebinding: a name that points at 127.0.0.1 but is not this playground's.
  const rebound = await get("/api/files", "attacker.example:8800");
  expect({ status: rebound.status, code: (await rebound.json()).code }).toEqual({ status: 421, code: "PLAY_WRONG_HOST" });
  expect((await get("/", "localhost:8800")).status).toBe(200);
  const big = await post("/api/analyze", { files: [{ path: "a.duty", text: "#".repeat(3 * 1024 * 1024) }] });
  expect({ status: big.status, code: (await big.json()).code }).toEqual({ status: 413, code: "PLAY_BODY_TOO_LARGE" });
  expect((await get("/nowhere")).status).toBe(404);
});

test("loopback only: a non-loopback address is refused unless asked for explicitly", async () => {
  for (const host of ["127.0.0.1", "127.3.2.1", "::1", "localhost"]) expect({ host, loopback: isLoopbackHost(host) }).toEqual({ host, loopback: true });
  for (const host of ["0.0.0.0", "10.0.0.1", "::", "example.com", "127.example.com"]) expect({ host, loopback: isLoopbackHost(host) }).toEqual({ host, loopback: false });
  const refused = startPlayServer({ source, host: "0.0.0.0", port: 0 });
  await expect(refused).rejects.toBeInstanceOf(GatewayError);
  await expect(startPlayServer({ source, host: "0.0.0.0", port: 0 })).rejects.toMatchObject({ code: "PLAY_NOT_LOOPBACK" });
  expect(parsePlayArgs(["--listen", "0.0.0.0:8800", "--allow-non-loopback"])).toEqual({ dir: null, host: "0.0.0.0", port: 8800, allowNonLoopback: true });
  expect(parsePlayArgs([])).toEqual({ dir: null, host: "127.0.0.1", port: 8800, allowNonLoopback: false });
  expect(() => parsePlayArgs(["--listen", "8800"])).toThrow(/`--listen` needs `host:port`/);
});

test("a real listener on loopback answers its own name and refuses another", async () => {
  const server = await startPlayServer({ source, host: "127.0.0.1", port: 0 });
  servers.push(server);
  expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
  const page = await fetch(server.url);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain("<title>dutygate playground</title>");
  const other = await fetch(`${server.url}api/files`, { headers: { host: `rebind.example:${server.port}` } });
  expect(other.status).toBe(421);
});

test("the page starts from DIR, or from the embedded examples where there is no policies/", () => {
  expect(playSource(join(ROOT, "policies")).read().map((f) => f.path)).toEqual([...shipped, ...shippedTests].map((f) => f.path));
  const previous = process.cwd();
  process.chdir(import.meta.dir);
  try {
    const examples = playSource(null);
    expect(examples.label).toContain("example policies");
    expect(examples.read().map((f) => f.path).sort()).toEqual([...shipped, ...shippedTests].map((f) => f.path).sort());
  } finally {
    process.chdir(previous);
  }
  expect(() => playSource(join(ROOT, "no-such-dir"))).toThrow(/does not exist/);
});
