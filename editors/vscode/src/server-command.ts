// How the extension starts the language server: `gateway lsp`, the binary configurable. Kept
// apart from extension.ts (which needs the editor's `vscode` module) so tests can run it.

/** The extension's settings that decide how the server starts (`dutygate.*`). */
export interface ServerSettings {
  /** `dutygate.path`: the `gateway` binary, a name on PATH or a path. */
  path?: string;
  /** `dutygate.lspArgs`: extra arguments after `gateway lsp`. */
  lspArgs?: readonly string[];
}

/** The command line of the language server: `gateway lsp` unless the settings say otherwise. */
export function serverCommand(settings: ServerSettings): { command: string; args: string[] } {
  const path = typeof settings.path === "string" && settings.path.trim() !== "" ? settings.path.trim() : "gateway";
  const extra = Array.isArray(settings.lspArgs) ? settings.lspArgs.filter((a): a is string => typeof a === "string") : [];
  return { command: path, args: ["lsp", ...extra] };
}
