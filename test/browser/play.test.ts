// `gateway play` in a real browser: Debian's headless Chromium, driven over the DevTools protocol
// with playwright-core. A person types a broken policy and sees the error at its line, fixes it,
// runs a request and sees ALLOW with the rule that decided highlighted. Screenshots are kept in
// $DUTYGATE_ARTEFACTS (default: the temp directory's dutygate-artefacts/) for a person to look at.
//
// The playground and the browser each run in a process group of their own, killed by PID
// whatever happens. Without a Chromium the test is skipped, except under CI=true, where it fails:
// test/run.sh installs Debian's `chromium` when it can.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

const ROOT = resolve(import.meta.dir, "..", "..");
const ARTEFACTS = process.env.DUTYGATE_ARTEFACTS ?? join(tmpdir(), "dutygate-artefacts");

/** The system Chromium: $CHROMIUM, else Debian's `chromium` on PATH. */
function findChromium(): string | null {
  if (process.env.CHROMIUM) return existsSync(process.env.CHROMIUM) ? process.env.CHROMIUM : null;
  const which = spawnSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], { encoding: "utf8" });
  return which.status === 0 ? which.stdout.trim().split("\n")[0]! : null;
}

const CHROMIUM = findChromium();
const IN_CI = process.env.CI === "true";

if (!CHROMIUM && IN_CI) {
  test("a Chromium is installed for the browser test (CI=true: test/run.sh installs Debian's `chromium`)", () => {
    expect(CHROMIUM).not.toBeNull();
  });
}

const children: ChildProcess[] = [];
const tmp = mkdtempSync(join(tmpdir(), "dutygate-play-browser-"));

/** Starts argv in its own process group; output collected; killed with its group in afterAll. */
function startGroup(argv: string[], cwd: string): { child: ChildProcess; output: () => string } {
  const child = spawn(argv[0]!, argv.slice(1), { cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return { child, output: () => out };
}

/** Waits (bounded) until `pattern` appears in the output; throws with the output otherwise. */
async function waitForOutput(run: { child: ChildProcess; output: () => string }, pattern: RegExp, what: string, deadlineMs = 30_000): Promise<RegExpExecArray> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const m = pattern.exec(run.output());
    if (m) return m;
    if (run.child.exitCode !== null) break;
    await Bun.sleep(25);
  }
  throw new Error(`${what} did not start (exit ${run.child.exitCode}):\n${run.output()}`);
}

let browser: Browser | null = null;
let page: Page;
let baseUrl = "";

beforeAll(async () => {
  if (!CHROMIUM) return;
  cpSync(join(ROOT, "policies"), join(tmp, "policies"), { recursive: true });
  const play = startGroup([join(ROOT, "node_modules/.bin/bun"), join(ROOT, "src/main.ts"), "play", "policies", "--listen", "127.0.0.1:0"], tmp);
  baseUrl = (await waitForOutput(play, /dutygate playground on (http:\/\/127\.0\.0\.1:\d+\/)/, "gateway play"))[1]!;
  const chrome = startGroup([
    CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", `--user-data-dir=${join(tmp, "chromium-profile")}`,
    "--window-size=1400,1100", "about:blank",
  ], tmp);
  const ws = (await waitForOutput(chrome, /DevTools listening on (ws:\/\/\S+)/, "chromium"))[1]!;
  browser = await chromium.connectOverCDP(ws);
  const context = browser.contexts()[0] ?? (await browser.newContext());
  page = context.pages()[0] ?? (await context.newPage());
  await page.setViewportSize({ width: 1400, height: 1100 });
}, 60_000);

afterAll(async () => {
  try { await browser?.close(); } catch { /* the browser is killed below */ }
  for (const child of children) {
    try { process.kill(-child.pid!, "SIGKILL"); } catch { /* the group is gone already */ }
  }
  rmSync(tmp, { recursive: true, force: true });
});

test.skipIf(!CHROMIUM)("a broken policy shows its error at the line; fixed, a request is ALLOWed with its rule highlighted", async () => {
  const requested: string[] = [];
  page.on("request", (r) => requested.push(r.url()));
  await page.goto(baseUrl);
  await page.waitForFunction(() => document.getElementById("status")?.textContent?.startsWith("no errors"), null, { timeout: 15_000 });
  expect(await page.$eval("#file-select", (s) => (s as HTMLSelectElement).selectedOptions[0]!.textContent)).toBe("changes.duty");
  // Highlighted by the grammar: keywords and routes carry their classes.
  expect(await page.$$eval("#highlight .tok-keyword-control-declaration", (els) => els.length)).toBeGreaterThan(5);
  expect(await page.$eval("#highlight .tok-string-unquoted-route", (el) => el.textContent)).toBe("/changes");
  // The tables: who may do what, and separation of duties.
  const submitCell = await page.$eval("#matrix", (t) => {
    const table = t as HTMLTableElement;
    const col = [...table.rows[0]!.cells].findIndex((c) => c.textContent!.startsWith("submit_change"));
    const row = [...table.rows].find((r) => r.cells[0]!.textContent === "developer")!;
    return row.cells[col]!.textContent;
  });
  expect(submitCell).toBe("yes");
  expect(await page.$eval("#reachability", (t) => t.textContent)).toContain("submit_change / approve_change");
  expect(await page.$eval("#tests-summary", (p) => p.textContent)).toMatch(/^policy tests: \d+ passed, 0 failed$/);

  // Type a broken line at the end of changes.duty.
  const original = readFileSync(join(tmp, "policies", "changes.duty"), "utf8");
  const brokenLine = original.split("\n").length; // the file ends with a newline: the cursor's line
  const typed = "grant developer approve_chnge";
  await page.click("#editor");
  await page.keyboard.press("Control+End");
  await page.keyboard.type(typed);
  // Wait for the check of the whole line (a check of a prefix typed so far may answer first).
  await page.waitForFunction((line) => document.querySelector(`#gutter div[data-line="${line}"]`)?.classList.contains("err")
    && [...document.querySelectorAll("#diagnostics li")].some((li) => li.textContent!.includes("`approve_chnge`")), brokenLine, { timeout: 15_000 });
  const diagnostics = await page.$$eval("#diagnostics li", (lis) => lis.map((li) => li.textContent!));
  expect(diagnostics.length).toBe(1);
  expect(diagnostics[0]).toStartWith(`changes.duty:${brokenLine}:17: error[`);
  expect(diagnostics[0]).toContain("approve_chnge");
  expect(await page.$$eval("#marks mark.err", (ms) => ms.map((m) => m.textContent))).toEqual(["approve_chnge"]);
  expect(await page.$eval("#status", (s) => s.textContent)).toBe("1 error");
  expect(await page.$eval("#run", (b) => (b as HTMLButtonElement).disabled)).toBe(true);
  mkdirSync(ARTEFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTEFACTS, "play-broken.png"), fullPage: true });

  // Fix it: delete what was typed.
  for (let i = 0; i < typed.length; i++) await page.keyboard.press("Backspace");
  await page.waitForFunction(() => document.getElementById("status")?.textContent?.startsWith("no errors"), null, { timeout: 15_000 });
  expect(await page.$$eval("#diagnostics li", (lis) => lis.length)).toBe(0);
  expect(await page.$eval("#editor", (e) => (e as HTMLTextAreaElement).value)).toBe(original);

  // Run a request: alice (a developer, the form's default principal) submits change 42.
  await page.selectOption("#method", "POST");
  await page.fill("#path", "/changes/42/submit");
  await page.click("#run");
  await page.waitForSelector("#verdict", { timeout: 15_000 });
  expect(await page.$eval("#verdict", (v) => v.firstChild!.textContent)).toBe("ALLOW");
  expect(await page.$eval("#decided-by", (d) => d.textContent)).toBe("grant:changes.duty:10:1");
  expect(await page.$$eval("#gutter div.hit", (ds) => ds.map((d) => d.textContent))).toEqual(["10"]);
  expect(await page.$$eval("#marks mark.hit", (ms) => ms.map((m) => m.textContent).join(""))).toBe("grant developer submit_change");
  expect(await page.$eval("table.reasons tr.decider", (r) => r.textContent)).toContain("changes.duty:10:1");
  await page.screenshot({ path: join(ARTEFACTS, "play-allow.png"), fullPage: true });
  console.log(`screenshots: ${join(ARTEFACTS, "play-broken.png")}, ${join(ARTEFACTS, "play-allow.png")}`);

  // Another principal and a time after the SRE's temporary exception: denied, no rule to mark.
  await page.fill("#principal", JSON.stringify({ sub: "erin", roles: ["sre"], mfa: true, team: "ops" }));
  await page.fill("#path", "/changes/42/deploy");
  await page.fill("#time", "2028-01-01T00:00:00Z");
  await page.click("#run");
  await page.waitForFunction(() => document.getElementById("verdict")?.textContent?.startsWith("DENY"), null, { timeout: 15_000 });
  expect(await page.$eval("#verdict", (v) => v.textContent)).toBe("DENYDENY_NO_GRANT");
  expect(await page.$eval("#decided-by", (d) => d.textContent)).toBe("default deny");

  // Nothing came from anywhere but the playground: no CDN, no network.
  expect(requested.length).toBeGreaterThan(3);
  expect(requested.filter((u) => !u.startsWith(baseUrl))).toEqual([]);
  expect(existsSync(join(ARTEFACTS, "play-allow.png"))).toBe(true);
}, 90_000);
