// The editor side of the `.duty` language: highlighting and language configuration are
// declarative (package.json); this file starts `gateway lsp` over stdio and connects the
// editor to it. Everything the server knows comes from the gateway's own parser and checker.
import * as vscode from "vscode";
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from "vscode-languageclient/node";
import { serverCommand, type ServerSettings } from "./server-command.ts";

let client: LanguageClient | undefined;

function readSettings(): ServerSettings {
  const config = vscode.workspace.getConfiguration("dutygate");
  return { path: config.get<string>("path"), lspArgs: config.get<string[]>("lspArgs") };
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const { command, args } = serverCommand(readSettings());
  const serverOptions: ServerOptions = { command, args, transport: TransportKind.stdio, options: { cwd: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath } };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ language: "duty" }],
    // The server reads a whole policy directory: tell it when a file of it changes on disk.
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.duty") },
  };
  client = new LanguageClient("dutygate", "dutygate .duty language server", serverOptions, clientOptions);
  try {
    await client.start();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    void vscode.window.showErrorMessage(`cannot start \`${command} ${args.join(" ")}\`: ${message} (set \`dutygate.path\` to the gateway binary)`);
  }
  context.subscriptions.push({ dispose: () => void client?.stop() });
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  await startClient(context);
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration(async (event) => {
    if (!event.affectsConfiguration("dutygate")) return;
    await client?.stop();
    await startClient(context);
  }));
}

export function deactivate(): Thenable<void> | undefined {
  return client?.stop();
}
