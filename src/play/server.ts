// `gateway play`: the playground's web server. Hono on the loopback interface, serving the page's
// assets from the binary (embedded.ts) and a small JSON API over the language (api.ts). Nothing
// is fetched from the network and nothing is written: the policy being edited lives in the page.
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cidrContains, parseCidr, parseIp } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import type { ExplainInput } from "../gateway/mod.ts";
import { analyzePlayFiles, explainPlayRequest, readPlayFiles, type PlayFile } from "./api.ts";
import { PLAY_ASSETS } from "./embedded.ts";
// The editor extension's grammar, the one source of highlighting rules; bundled into the binary.
import DUTY_GRAMMAR from "../../editors/vscode/syntaxes/duty.tmLanguage.json" with { type: "json" };

/** The default address: loopback only, a port of its own (the gateway listens on 8443). */
export const DEFAULT_PLAY_LISTEN = "127.0.0.1:8800";

/** The policy the page starts from: files read from a directory, or the embedded examples. */
export interface PlaySource {
  /** How the page names where the files came from (`policies/`, or `the example policies`). */
  label: string;
  read(): PlayFile[];
}

const LOOPBACK_V4 = parseCidr("127.0.0.0/8")!;

/** `localhost`, `127.0.0.0/8` or `::1`: addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  const ip = parseIp(host);
  return !!ip && (ip.v6 ? ip.text === "::1" : cidrContains(LOOPBACK_V4, ip));
}

// The page loads only its own files: no inline script, nothing from another origin.
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The playground as a Hono app (tested in-process with `app.request()`). `allowedHosts` is the
 * set of `Host` header values it answers (the loopback names of its port), or null for any: a
 * page on another site that points its own DNS name at 127.0.0.1 (DNS rebinding) gets 421.
 */
export function createPlayApp(source: PlaySource, allowedHosts: () => ReadonlySet<string> | null): Hono {
  const app = new Hono();
  app.use("*", async (c, next) => {
    const allowed = allowedHosts();
    const host = c.req.header("host") ?? "";
    if (allowed && !allowed.has(host.toLowerCase())) return c.json({ code: "PLAY_WRONG_HOST", message: `this playground answers ${[...allowed].join(", ")}, not \`${host}\`` }, 421);
    await next();
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "no-referrer");
    c.header("cache-control", "no-store");
  });
  // A form on another site cannot post JSON without a preflight, which this server never grants.
  app.use("/api/*", bodyLimit({ maxSize: 2 * 1024 * 1024, onError: (c) => c.json({ code: "PLAY_BODY_TOO_LARGE", message: "the request body is larger than 2 MiB" }, 413) }));
  app.use("/api/*", async (c, next) => {
    if (c.req.method === "POST" && !(c.req.header("content-type") ?? "").startsWith("application/json")) return c.json({ code: "PLAY_NOT_JSON", message: "send `content-type: application/json`" }, 415);
    await next();
  });

  for (const [path, asset] of Object.entries(PLAY_ASSETS)) {
    app.get(path, (c) => {
      c.header("content-type", asset.type);
      if (asset.type.startsWith("text/html")) c.header("content-security-policy", CONTENT_SECURITY_POLICY);
      return c.body(asset.text);
    });
  }

  const grammarText = JSON.stringify(DUTY_GRAMMAR);
  app.get("/duty.tmLanguage.json", (c) => {
    c.header("content-type", "application/json; charset=utf-8");
    return c.body(grammarText);
  });

  app.get("/api/files", (c) => c.json({ label: source.label, files: source.read() }));

  const readJson = async (req: Request): Promise<unknown> => {
    try { return await req.json(); } catch { return undefined; }
  };
  app.post("/api/analyze", async (c) => {
    const files = readPlayFiles(await readJson(c.req.raw));
    if (!Array.isArray(files)) return c.json(files, 400);
    return c.json(analyzePlayFiles(files));
  });
  app.post("/api/explain", async (c) => {
    const body = await readJson(c.req.raw);
    const files = readPlayFiles(body);
    if (!Array.isArray(files)) return c.json(files, 400);
    const { principal, request, headers, channel, ip, time } = body as Record<string, unknown>;
    const result = await explainPlayRequest(files, { principal, request, headers, channel, ip, time } as ExplainInput);
    return c.json(result, result.ok || result.code === "PLAY_POLICY_ERRORS" ? 200 : 400);
  });
  app.notFound((c) => c.json({ code: "PLAY_NOT_FOUND", message: `no \`${c.req.path}\` here` }, 404));
  // A bug answers a code, never a stack trace.
  app.onError((_e, c) => c.json({ code: "PLAY_INTERNAL_ERROR", message: "the playground failed on this request; please report it" }, 500));
  return app;
}

export interface PlayServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Starts the playground on `host:port` (port 0: any free one). A host that is not loopback is
 * refused (`PLAY_NOT_LOOPBACK`) unless `allowNonLoopback`: the page runs any policy and request
 * it is sent, and has no authentication.
 */
export async function startPlayServer(options: { source: PlaySource; host: string; port: number; allowNonLoopback?: boolean }): Promise<PlayServer> {
  const { host } = options;
  const loopback = isLoopbackHost(host);
  if (!loopback && !options.allowNonLoopback) {
    throw new GatewayError("PLAY_NOT_LOOPBACK", `\`${host}\` is not a loopback address; the playground has no authentication`, { help: "listen on 127.0.0.1 (the default), or pass `--allow-non-loopback` to serve other machines on purpose" });
  }
  let hosts: Set<string> | null = null;
  const app = createPlayApp(options.source, () => hosts);
  const server = await new Promise<ServerType>((resolve, reject) => {
    // The runtime's own Request/Response stay global: the gateway's listeners in the same process need them.
    const s = serve({ fetch: app.fetch, hostname: host === "localhost" ? "127.0.0.1" : host, port: options.port, overrideGlobalObjects: false }, () => resolve(s));
    s.once("error", reject);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  const shown = host.includes(":") ? `[${host}]` : host;
  if (loopback) hosts = new Set([`${shown}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`].map((h) => h.toLowerCase()));
  return {
    url: `http://${shown}:${port}/`,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    }),
  };
}
