// `gateway lsp`: a Language Server Protocol server (https://microsoft.github.io/language-server-protocol/)
// for `.duty` files, over a pair of streams (stdio for `gateway lsp`; an editor extension starts
// that command). Built on `vscode-languageserver`; every answer comes from the language's own
// parser, checker, analysis and formatter (dsl/mod.ts) through a PolicyModel.
//
// A policy is every `.duty` file of a directory tree, as `gateway check DIR` reads it: the open
// file's directory and below (a file in a subdirectory of a policy sees its own subtree only;
// walking up could take in any stray `.duty` file of /tmp or a home directory). Open documents
// replace their files' text on disk. A change is
// checked once the edits pause (`debounceMs`); a request that needs positions (hover,
// definition, references, code lens, formatting) first brings its policy up to date, while
// completion answers at once from the last check and the document's current text.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createConnection, TextDocuments, TextDocumentSyncKind } from "vscode-languageserver";
import type { Connection, InitializeResult } from "vscode-languageserver";
import { createProtocolConnection, StreamMessageReader, StreamMessageWriter } from "vscode-languageserver-protocol/node";
import { TextDocument } from "vscode-languageserver-textdocument";
import { parsePolicySource, type ParseResult } from "../../dsl/mod.ts";
import { VERSION } from "../version.ts";
import { codeLensesOf, completionAt, definitionAt, diagnosticsOf, formattingEdits, hoverAt, referencesAt } from "./features.ts";
import { buildPolicyModel, type PolicyModel } from "./policy-model.ts";

export interface LanguageServerOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Quiet time after the last edit before a policy is checked again (default 50 ms). */
  debounceMs?: number;
  /** The checker's "now" for `until` findings (tests pin it); default the clock. */
  now?: () => number;
}

/** The state of one policy: its files' parses (kept while their text is unchanged) and its last model. */
interface PolicyState {
  /** Absolute directory, or the URI of an unsaved document that is a policy of its own. */
  root: string;
  onDisk: boolean;
  parses: Map<string, { text: string; parsed: ParseResult }>;
  model: PolicyModel | null;
  stale: boolean;
  timer: ReturnType<typeof setTimeout> | null;
  /** Files that were sent diagnostics, so a file that left the policy gets them cleared. */
  published: Set<string>;
}

/** Directory entries a policy tree may have before the walk stops (a `.duty` file opened in a home directory). */
const MAX_TREE_ENTRIES = 5_000;

/**
 * The `.duty` files below a directory, as `gateway check DIR` reads them (hidden entries and
 * `node_modules` skipped), paths relative to it; the walk stops after MAX_TREE_ENTRIES entries.
 */
export function policyFilesUnder(root: string, maxEntries = MAX_TREE_ENTRIES): Map<string, string> {
  const out = new Map<string, string>();
  const queue = [root];
  let seen = 0;
  while (queue.length && seen < maxEntries) {
    const dir = queue.shift()!;
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      if (++seen > maxEntries) break;
      if (name.startsWith(".") || name === "node_modules") continue;
      const full = join(dir, name);
      try {
        const st = statSync(full);
        if (st.isDirectory()) queue.push(full);
        else if (st.isFile() && name.endsWith(".duty")) out.set(relative(root, full).split(sep).join("/"), readFileSync(full, "utf8"));
      } catch {
        // Gone or unreadable since the listing: not part of the policy.
      }
    }
  }
  return out;
}

/**
 * A connection over two streams. Built from the library's runtime-neutral parts rather than its
 * `/node` entry, which reads its own file name at load time: bundled, that would put the build
 * machine's path into the binary. Same lifecycle as that entry: `exit`, or the input ending,
 * ends the process (0 after `shutdown`, 1 otherwise).
 */
function connectStreams(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Connection {
  let shutdownReceived = false;
  let ended = false;
  const end = (code: number) => {
    if (ended) return;
    ended = true;
    process.exit(code);
  };
  input.on("end", () => end(shutdownReceived ? 0 : 1));
  input.on("close", () => end(shutdownReceived ? 0 : 1));
  const watchDog = {
    get shutdownReceived() { return shutdownReceived; },
    set shutdownReceived(value: boolean) { shutdownReceived = value; },
    initialize: () => {},
    exit: (code: number) => end(code),
  };
  return createConnection(
    (logger) => createProtocolConnection(new StreamMessageReader(input), new StreamMessageWriter(output), logger),
    watchDog,
  );
}

/** Starts a language server on the streams; it runs until the client sends `exit` or closes the input. */
export function startLanguageServer(options: LanguageServerOptions): Connection {
  const connection = connectStreams(options.input, options.output);
  const documents = new TextDocuments(TextDocument);
  const policies = new Map<string, PolicyState>();
  const debounceMs = options.debounceMs ?? 50;

  /** The policy a document belongs to, and the document's name in it. */
  const locate = (uri: string): { state: PolicyState; file: string } => {
    let root: string, file: string, onDisk: boolean;
    if (uri.startsWith("file:")) {
      const path = fileURLToPath(uri);
      root = dirname(path);
      file = relative(root, path).split(sep).join("/");
      onDisk = true;
    } else {
      root = uri;
      file = uri.replace(/^.*[/:]/, "") || "untitled.duty";
      onDisk = false;
    }
    let state = policies.get(root);
    if (!state) {
      state = { root, onDisk, parses: new Map(), model: null, stale: true, timer: null, published: new Set() };
      policies.set(root, state);
    }
    return { state, file };
  };
  const uriOf = (state: PolicyState) => (file: string) => (state.onDisk ? pathToFileURL(join(state.root, file)).href : state.root);

  /** The texts of a policy: its files on disk, replaced by the open documents. */
  const sourcesOf = (state: PolicyState): Map<string, string> => {
    const texts = new Map<string, string>();
    if (state.onDisk) for (const [file, text] of policyFilesUnder(state.root)) texts.set(file, text);
    for (const doc of documents.all()) {
      const where = locate(doc.uri);
      if (where.state === state) texts.set(where.file, doc.getText());
    }
    return texts;
  };

  /** Checks a policy again (parsing only the files whose text changed) and publishes its diagnostics. */
  const refresh = (state: PolicyState): PolicyModel => {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    const files = new Map<string, { parsed: ParseResult; text: string }>();
    for (const [file, text] of sourcesOf(state)) {
      const cached = state.parses.get(file);
      const parsed = cached && cached.text === text ? cached.parsed : parsePolicySource({ path: file, text });
      files.set(file, { parsed, text });
    }
    state.parses = new Map([...files].map(([file, f]) => [file, { text: f.text, parsed: f.parsed }]));
    const model = buildPolicyModel(files, { now: options.now?.() });
    state.model = model;
    state.stale = false;
    const toUri = uriOf(state);
    for (const file of files.keys()) void connection.sendDiagnostics({ uri: toUri(file), diagnostics: diagnosticsOf(model, file, toUri) });
    for (const file of state.published) if (!files.has(file)) void connection.sendDiagnostics({ uri: toUri(file), diagnostics: [] });
    state.published = new Set(files.keys());
    return model;
  };

  const schedule = (state: PolicyState) => {
    state.stale = true;
    if (state.timer) clearTimeout(state.timer);
    state.timer = setTimeout(() => refresh(state), debounceMs);
  };

  /** The model of a document's policy, up to date unless `allowStale` and one exists. */
  const modelFor = (uri: string, allowStale = false): { model: PolicyModel; file: string; state: PolicyState } => {
    const { state, file } = locate(uri);
    const model = state.model && (allowStale || !state.stale) ? state.model : refresh(state);
    return { model, file, state };
  };
  const offsetIn = (uri: string, position: { line: number; character: number }) => documents.get(uri)?.offsetAt(position) ?? 0;

  connection.onInitialize((): InitializeResult => ({
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      hoverProvider: true,
      definitionProvider: true,
      referencesProvider: true,
      completionProvider: { triggerCharacters: [".", " "] },
      documentFormattingProvider: true,
      codeLensProvider: { resolveProvider: false },
    },
    serverInfo: { name: "dutygate", version: VERSION },
  }));

  documents.onDidChangeContent((e) => schedule(locate(e.document.uri).state));
  documents.onDidClose((e) => {
    const { state } = locate(e.document.uri);
    // On disk, the file's saved text takes the document's place; an unsaved one leaves with it.
    if (state.onDisk) return schedule(state);
    policies.delete(state.root);
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });

  // A client that watches `*.duty` files on disk (the editor extension does) reports saved changes,
  // new and deleted files: their policy is checked again.
  connection.onDidChangeWatchedFiles((p) => {
    for (const change of p.changes) if (change.uri.endsWith(".duty")) schedule(locate(change.uri).state);
  });

  connection.onHover((p) => {
    const { model, file } = modelFor(p.textDocument.uri);
    return hoverAt(model, file, offsetIn(p.textDocument.uri, p.position));
  });
  connection.onDefinition((p) => {
    const { model, file, state } = modelFor(p.textDocument.uri);
    return definitionAt(model, file, offsetIn(p.textDocument.uri, p.position), uriOf(state));
  });
  connection.onReferences((p) => {
    const { model, file, state } = modelFor(p.textDocument.uri);
    return referencesAt(model, file, offsetIn(p.textDocument.uri, p.position), p.context.includeDeclaration, uriOf(state));
  });
  connection.onCompletion((p) => {
    const doc = documents.get(p.textDocument.uri);
    if (!doc) return [];
    const { model } = modelFor(p.textDocument.uri, true);
    return completionAt(model, doc.getText(), doc.offsetAt(p.position));
  });
  connection.onDocumentFormatting((p) => {
    const { model, file } = modelFor(p.textDocument.uri);
    return formattingEdits(model, file);
  });
  connection.onCodeLens((p) => {
    const { model, file } = modelFor(p.textDocument.uri);
    return codeLensesOf(model, file);
  });

  documents.listen(connection);
  connection.listen();
  return connection;
}
