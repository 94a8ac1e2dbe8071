// A real LSP client for tests and the benchmark: `gateway lsp` (the source under Bun, or the
// compiled binary) in its own process group, spoken to over its stdin/stdout with
// vscode-jsonrpc's stream reader and writer — the same JSON-RPC framing an editor uses.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from "vscode-jsonrpc/node";
import { REPO_ROOT } from "./harness.ts";

/** The LSP diagnostic as it arrives (only the fields the tests read). */
export interface WireDiagnostic {
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  severity: number;
  code: string;
  message: string;
  source?: string;
  relatedInformation?: Array<{ location: { uri: string; range: WireDiagnostic["range"] }; message: string }>;
}

export interface LspSession {
  connection: MessageConnection;
  pid: number;
  initializeResult: { capabilities: Record<string, unknown>; serverInfo?: { name: string; version?: string } };
  /** The latest diagnostics published for each URI. */
  diagnostics: Map<string, WireDiagnostic[]>;
  /** The next diagnostics published for `uri` (call before the edit that causes them). */
  nextDiagnostics(uri: string, deadlineMs?: number): Promise<WireDiagnostic[]>;
  /** The first diagnostics published for `uri` from now on that satisfy `wanted`. */
  diagnosticsMatching(uri: string, wanted: (d: WireDiagnostic[]) => boolean, deadlineMs?: number): Promise<WireDiagnostic[]>;
  open(uri: string, text: string): Promise<WireDiagnostic[]>;
  /** Replaces a document's whole text (version bumped); resolves with its next diagnostics. */
  change(uri: string, text: string): Promise<WireDiagnostic[]>;
  stderr(): string;
  /** `shutdown` and `exit`, then waits for the process (killing its group past `deadlineMs`). */
  close(deadlineMs?: number): Promise<number | null>;
  /** Kills the process group now (for `finally` blocks; harmless when it already exited). */
  kill(): void;
}

export const uriOf = (path: string) => pathToFileURL(path).href;

/** The command that runs `gateway lsp` from source. */
export const SOURCE_LSP = [join(REPO_ROOT, "node_modules", ".bin", "bun"), join(REPO_ROOT, "src", "main.ts"), "lsp", "--stdio"];

/**
 * Starts `command` (default `gateway lsp` from source) and completes the `initialize` handshake.
 * Every wait is bounded by a deadline, so a server that never answers fails the test instead of hanging it.
 */
export async function startLspSession(command: readonly string[] = SOURCE_LSP, options: { cwd?: string; env?: Record<string, string> } = {}): Promise<LspSession> {
  const child = spawn(command[0]!, command.slice(1), { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
  const pid = child.pid!;
  let exited: number | null | undefined;
  const exitPromise = new Promise<number | null>((res) => child.once("exit", (code) => { exited = code; res(code); }));
  const kill = () => {
    try { process.kill(-pid, "SIGKILL"); } catch { /* the group is gone already */ }
  };
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const connection = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
  const diagnostics = new Map<string, WireDiagnostic[]>();
  const waiting = new Map<string, Array<(d: WireDiagnostic[]) => void>>();
  connection.onNotification("textDocument/publishDiagnostics", (p: { uri: string; diagnostics: WireDiagnostic[] }) => {
    diagnostics.set(p.uri, p.diagnostics);
    const list = waiting.get(p.uri) ?? [];
    waiting.delete(p.uri);
    for (const resolve of list) resolve(p.diagnostics);
  });
  connection.listen();
  const withDeadline = <T>(promise: Promise<T>, deadlineMs: number, what: string): Promise<T> => {
    let timer: ReturnType<typeof setTimeout>;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${deadlineMs} ms (exit ${exited}); stderr: ${err.slice(0, 2000)}`)), deadlineMs);
    });
    return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
  };
  const nextDiagnostics = (uri: string, deadlineMs = 30_000) =>
    withDeadline(new Promise<WireDiagnostic[]>((resolve) => waiting.set(uri, [...(waiting.get(uri) ?? []), resolve])), deadlineMs, `diagnostics for ${uri}`);
  const diagnosticsMatching = (uri: string, wanted: (d: WireDiagnostic[]) => boolean, deadlineMs = 30_000) =>
    withDeadline(new Promise<WireDiagnostic[]>((resolve) => {
      const wait = () => waiting.set(uri, [...(waiting.get(uri) ?? []), (d) => (wanted(d) ? resolve(d) : wait())]);
      wait();
    }), deadlineMs, `matching diagnostics for ${uri}`);
  const versions = new Map<string, number>();
  try {
    const initializeResult = await withDeadline(connection.sendRequest("initialize", { processId: null, rootUri: null, capabilities: {} }), 30_000, "initialize") as LspSession["initializeResult"];
    await connection.sendNotification("initialized", {});
    return {
      connection,
      pid,
      initializeResult,
      diagnostics,
      nextDiagnostics,
      diagnosticsMatching,
      async open(uri, text) {
        const next = nextDiagnostics(uri);
        versions.set(uri, 1);
        await connection.sendNotification("textDocument/didOpen", { textDocument: { uri, languageId: "duty", version: 1, text } });
        return next;
      },
      async change(uri, text) {
        const next = nextDiagnostics(uri);
        const version = (versions.get(uri) ?? 1) + 1;
        versions.set(uri, version);
        await connection.sendNotification("textDocument/didChange", { textDocument: { uri, version }, contentChanges: [{ text }] });
        return next;
      },
      stderr: () => err,
      async close(deadlineMs = 10_000) {
        try {
          await withDeadline(connection.sendRequest("shutdown"), deadlineMs, "shutdown");
          await connection.sendNotification("exit");
          return await withDeadline(exitPromise, deadlineMs, "exit");
        } finally {
          connection.dispose();
          kill();
        }
      },
      kill,
    };
  } catch (e) {
    connection.dispose();
    kill();
    throw e;
  }
}
