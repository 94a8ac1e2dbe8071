// `gateway lsp` as an editor sees it: a subprocess spoken to over stdio by a real JSON-RPC
// client (test/support/lsp-client.ts), on a copy of the shipped policies in a temp directory.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPolicySource } from "../../dsl/mod.ts";
import { createRng } from "../../bench/gen-policy.ts";
import { mutateChars, mutateTokens } from "../fuzz/mutations.ts";
import { SHIPPED_POLICIES } from "../support/harness.ts";
import { startLspSession, uriOf, type LspSession } from "../support/lsp-client.ts";

const dir = mkdtempSync(join(tmpdir(), "dutygate-lsp-"));
const policies = join(dir, "policies");
cpSync(SHIPPED_POLICIES, policies, { recursive: true });
const CHANGES = join(policies, "changes.duty");
const BASE = join(policies, "base.duty");
const changesText = readFileSync(CHANGES, "utf8");
const baseText = readFileSync(BASE, "utf8");
let lsp: LspSession;

beforeAll(async () => {
  lsp = await startLspSession();
});
afterAll(async () => {
  try {
    await lsp?.close();
  } finally {
    lsp?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

type Pos = { line: number; character: number };
/** The position of the `n`th occurrence of `needle` in `text` (plus `shift` characters). */
function positionOf(text: string, needle: string, shift = 0, n = 0): Pos {
  let at = -1;
  for (let i = 0; i <= n; i++) at = text.indexOf(needle, at + 1);
  if (at < 0) throw new Error(`\`${needle}\` not in the text`);
  at += shift;
  const before = text.slice(0, at);
  return { line: before.split("\n").length - 1, character: at - before.lastIndexOf("\n") - 1 };
}
const request = <T>(method: string, uri: string, position?: Pos, extra: Record<string, unknown> = {}) =>
  lsp.connection.sendRequest(method, { textDocument: { uri }, ...(position ? { position } : {}), ...extra }) as Promise<T>;
const hoverText = async (uri: string, position: Pos) => (await request<{ contents: { value: string } } | null>("textDocument/hover", uri, position))?.contents.value ?? null;

describe("gateway lsp over stdio", () => {
  test("initialize announces what the server does", () => {
    const caps = lsp.initializeResult.capabilities;
    expect(lsp.initializeResult.serverInfo?.name).toBe("dutygate");
    for (const key of ["hoverProvider", "definitionProvider", "referencesProvider", "completionProvider", "documentFormattingProvider", "codeLensProvider", "textDocumentSync"]) expect(caps[key]).toBeTruthy();
  });

  test("diagnostics: a clean file has none; names declared in files not open resolve", async () => {
    expect(await lsp.open(uriOf(CHANGES), changesText)).toEqual([]);
  });

  test("diagnostics on change: the checker's code, range, help; fixed again, none", async () => {
    const broken = changesText.replace("grant reviewer  approve_change", "grant reviwer   approve_change");
    const diags = await lsp.change(uriOf(CHANGES), broken);
    expect(diags.map((d) => d.code)).toEqual(["E_UNKNOWN_ROLE"]);
    expect(diags[0]!.range.start).toEqual(positionOf(broken, "reviwer"));
    expect(diags[0]!.range.end).toEqual(positionOf(broken, "reviwer", "reviwer".length));
    expect(diags[0]!.severity).toBe(1);
    expect(diags[0]!.source).toBe("dutygate");
    expect(diags[0]!.message).toContain("did you mean `reviewer`?");
    expect(await lsp.change(uriOf(CHANGES), changesText)).toEqual([]);
  });

  test("diagnostics carry related places: an overlapping duty points at the duty it overlaps", async () => {
    const broken = changesText + "duty approve_other POST /changes/:id/approve -> changes\n";
    const diags = await lsp.change(uriOf(CHANGES), broken);
    const overlap = diags.find((d) => d.code === "E_OVERLAPPING_DUTY");
    expect(overlap?.range.start).toEqual(positionOf(broken, "/changes/:id/approve"));
    expect(overlap?.relatedInformation?.map((r) => [r.location.uri, r.location.range.start])).toEqual([[uriOf(CHANGES), positionOf(broken, "duty approve_change")]]);
    expect(await lsp.change(uriOf(CHANGES), changesText)).toEqual([]);
  });

  test("diagnostics reach other files of the policy: removing a role from base.duty flags its uses in changes.duty", async () => {
    const changesNext = lsp.nextDiagnostics(uriOf(CHANGES));
    await lsp.open(uriOf(BASE), baseText.replace("role developer, reviewer,", "role developer,"));
    const diags = await changesNext;
    expect(diags.map((d) => d.code)).toContain("E_UNKNOWN_ROLE");
    const cleared = lsp.nextDiagnostics(uriOf(CHANGES));
    await lsp.change(uriOf(BASE), baseText);
    expect(await cleared).toEqual([]);
  });

  test("a file changed on disk and reported by the client is checked again", async () => {
    const logs = join(policies, "logs.duty");
    const before = readFileSync(logs, "utf8");
    const report = () => lsp.connection.sendNotification("workspace/didChangeWatchedFiles", { changes: [{ uri: uriOf(logs), type: 2 }] });
    try {
      const flagged = lsp.diagnosticsMatching(uriOf(logs), (d) => d.length > 0);
      writeFileSync(logs, before + "grant auditor read_logz\n");
      await report();
      expect((await flagged).map((d) => d.code)).toEqual(["E_UNKNOWN_DUTY"]);
    } finally {
      writeFileSync(logs, before);
    }
    const cleared = lsp.diagnosticsMatching(uriOf(logs), (d) => d.length === 0);
    await report();
    expect(await cleared).toEqual([]);
  });

  test("hover: a duty's route, upstream and grants; a role's grants and exclusive sets; attribute and request field types; the reachability table on `separate`", async () => {
    const uri = uriOf(CHANGES);
    const duty = await hoverText(uri, positionOf(changesText, "approve_change", 2, 1));
    expect(duty).toContain("`POST /changes/:change/approve` → upstream `changes`");
    expect(duty).toContain("granted to `reviewer`");
    expect(duty).toContain("kept apart from `submit_change`, `deploy_change` by `change`");
    const role = await hoverText(uri, positionOf(changesText, "grant reviewer", 7));
    expect(role).toContain("**role** `reviewer`");
    expect(role).toContain("may `approve_change`");
    expect(role).toContain("exclusive with `security_admin`");
    expect(await hoverText(uri, positionOf(changesText, "principal.mfa", 11))).toBe("`principal.mfa`: `bool`");
    expect(await hoverText(uri, positionOf(changesText, "request.header", 9))).toContain("`request.header`: `string`");
    expect(await hoverText(uri, positionOf(changesText, "-> deploy", 4))).toContain("duties forwarding to it: `deploy_change`");
    expect(await hoverText(uri, { line: 0, character: 0 })).toBeNull();
    const table = await hoverText(uri, positionOf(changesText, "separate submit_change", 3));
    expect(table).toContain("| sides | one role reaches both | role combinations | verdict |");
    expect(table).toContain("| submit_change / approve_change | - | developer+reviewer | ok: different roles; a person holding both is kept apart by the duty ledger |");
  });

  test("go to definition: a role used in changes.duty is declared in base.duty; a route param in the duty's route", async () => {
    const defs = await request<Array<{ uri: string; range: { start: Pos } }>>("textDocument/definition", uriOf(CHANGES), positionOf(changesText, "grant reviewer", 7));
    expect(defs.map((d) => [d.uri, d.range.start])).toEqual([[uriOf(BASE), positionOf(baseText, "reviewer")]]);
    const param = await request<Array<{ uri: string; range: { start: Pos } }>>("textDocument/definition", uriOf(CHANGES), positionOf(changesText, "by change", 4));
    expect(param.length).toBe(4); // `:change` in four routes
    expect(param[0]!.range.start).toEqual(positionOf(changesText, ":change", 1));
  });

  test("find references: every use of a duty, with or without its declaration", async () => {
    const at = positionOf(changesText, "deploy_change", 0);
    const all = await request<Array<{ range: { start: Pos } }>>("textDocument/references", uriOf(CHANGES), at, { context: { includeDeclaration: true } });
    const uses = await request<Array<{ range: { start: Pos } }>>("textDocument/references", uriOf(CHANGES), at, { context: { includeDeclaration: false } });
    // Declared once; two grants, the forbid and the separate use it.
    expect(all.length).toBe(5);
    expect(uses.length).toBe(4);
    expect(all.map((l) => l.range.start.line)).toContain(positionOf(changesText, "forbid deploy_change").line);
  });

  test("completion: principal attributes, request fields, keywords at a line start, roles and duties in a grant", async () => {
    const uri = uriOf(CHANGES);
    const labels = async (text: string, needle: string) => {
      await lsp.change(uri, text);
      const items = await request<Array<{ label: string; detail?: string }>>("textDocument/completion", uri, positionOf(text, needle, needle.length));
      return items;
    };
    const attrs = await labels(changesText + "\nforbid read_change when principal.", "principal.");
    expect(attrs.map((i) => i.label).sort()).toEqual(["mfa", "roles", "sub", "team"]);
    expect(attrs.find((i) => i.label === "mfa")?.detail).toBe("bool");
    const fields = await labels(changesText + "\nforbid read_change when request.", "request.");
    expect(fields.map((i) => i.label)).toEqual(expect.arrayContaining(["method", "path", "ip", "time", "header", "query", "param"]));
    const keywords = (await labels(changesText + "\ngr", "\ngr")).map((i) => i.label);
    expect(keywords).toEqual(expect.arrayContaining(["grant", "duty", "forbid", "separate", "exclusive"]));
    const grant = (await labels(changesText + "\ngrant ", "\ngrant ")).map((i) => i.label);
    expect(grant).toEqual(expect.arrayContaining(["reviewer", "sre", "approve_change", "read_logs"]));
    expect(grant).not.toContain("principal");
    await lsp.change(uri, changesText);
  });

  test("document formatting: one edit to the canonical layout; none for a formatted or an unparsable file", async () => {
    const messy = join(policies, "messy.duty");
    const text = "grant   reviewer,sre read_logs   when principal.mfa\n";
    writeFileSync(messy, text);
    await lsp.open(uriOf(messy), text);
    const edits = await request<Array<{ newText: string; range: { start: Pos; end: Pos } }>>("textDocument/formatting", uriOf(messy), undefined, { options: { tabSize: 2, insertSpaces: true } });
    expect(edits.length).toBe(1);
    expect(edits[0]!.newText).toBe(formatPolicySource({ path: "messy.duty", text }).text!);
    expect(edits[0]!.range).toEqual({ start: { line: 0, character: 0 }, end: { line: 1, character: 0 } });
    expect(await request("textDocument/formatting", uriOf(CHANGES), undefined, { options: { tabSize: 2, insertSpaces: true } })).toEqual([]);
    await lsp.change(uriOf(messy), "grant reviewer\n");
    expect(await request("textDocument/formatting", uriOf(messy), undefined, { options: { tabSize: 2, insertSpaces: true } })).toEqual([]);
    const cleared = lsp.nextDiagnostics(uriOf(messy));
    rmSync(messy);
    await lsp.connection.sendNotification("textDocument/didClose", { textDocument: { uri: uriOf(messy) } });
    expect(await cleared).toEqual([]);
  });

  test("code lens: the separation-of-duties reachability table on each `separate` and `exclusive`", async () => {
    const lenses = await request<Array<{ range: { start: Pos }; command: { title: string } }>>("textDocument/codeLens", uriOf(CHANGES));
    const separateLine = positionOf(changesText, "separate submit_change").line;
    expect(lenses.map((l) => l.range.start.line)).toEqual([separateLine, separateLine, separateLine]);
    expect(lenses.map((l) => l.command.title)).toEqual(expect.arrayContaining([expect.stringContaining("submit_change / approve_change: different roles")]));
    const base = await request<Array<{ range: { start: Pos }; command: { title: string } }>>("textDocument/codeLens", uriOf(BASE));
    expect(base.map((l) => l.command.title)).toEqual(["✓ developer / deployer: never held together; both may list_changes, read_change", "✓ reviewer / security_admin: never held together"]);
  });

  test("fuzzed documents: every request kind answers without an error at positions all over the text (80 inputs)", async () => {
    const rng = createRng(0x15b);
    const shipped = [changesText, baseText, readFileSync(join(policies, "admin.duty"), "utf8")];
    const uri = "untitled:fuzzed";
    let answered = 0;
    for (let i = 0; i < 80; i++) {
      const text = i % 2 ? mutateTokens(rng, shipped[i % 3]!) : mutateChars(rng, shipped[i % 3]!);
      const where = `input ${i}:\n${text}`;
      if (i === 0) await lsp.open(uri, text);
      else await lsp.change(uri, text);
      const lines = text.split("\n");
      for (let p = 0; p < 12; p++) {
        const line = rng.int(lines.length);
        const position = { line, character: rng.int((lines[line]?.length ?? 0) + 1) };
        for (const method of ["textDocument/hover", "textDocument/definition", "textDocument/completion"]) {
          await request(method, uri, position).catch((e: Error) => { throw new Error(`${method} at ${JSON.stringify(position)}: ${e.message}\n${where}`); });
          answered++;
        }
        await request("textDocument/references", uri, position, { context: { includeDeclaration: true } });
      }
      const edits = await request<Array<{ newText: string }>>("textDocument/formatting", uri, undefined, { options: { tabSize: 2, insertSpaces: true } });
      const formatted = formatPolicySource({ path: "fuzzed", text }).text;
      expect(edits.length ? edits[0]!.newText : text, where).toBe(formatted ?? text);
      await request("textDocument/codeLens", uri);
    }
    expect(answered).toBe(80 * 12 * 3);
  }, 120_000);

  test("a file outside any directory of policies (an unsaved buffer) is a policy of its own", async () => {
    const uri = "untitled:Untitled-1";
    const diags = await lsp.open(uri, "role a\ngrant b x\n");
    expect(diags.map((d) => d.code)).toEqual(expect.arrayContaining(["E_NO_PRINCIPAL", "E_UNKNOWN_ROLE"]));
  });
});
