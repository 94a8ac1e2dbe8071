// The bundled example upstreams of the built-in default: tiny JSON services on loopback that
// answer what they received (method, path, the identity the gateway vouched for), so that the
// demo shows allow and deny end to end with nothing else running.
import { createServer, type Server } from "node:http";
import { getRequestListener } from "@hono/node-server";
import { Hono } from "hono";
import { decodeJwt } from "jose";
import { requestTargetOf } from "../http/mod.ts";
import { GatewayError } from "../errors.ts";

export interface DemoUpstreams {
  ports: Record<string, number>;
  close(): Promise<void>;
}

/**
 * One demo upstream as a Hono app: it answers any method and path with what it received (the
 * target as sent, the body's size, the identity token's claims, decoded, not verified).
 */
export function demoUpstreamApp(name: string, identityHeader: string): Hono {
  const app = new Hono();
  app.all("*", async (c) => {
    const received = await c.req.raw.arrayBuffer();
    const token = c.req.header(identityHeader);
    let identity: unknown = null;
    try {
      identity = token !== undefined ? decodeJwt(token) : null;
    } catch {
      identity = "unreadable";
    }
    const body = JSON.stringify({ upstream: name, method: c.req.method, path: requestTargetOf(c.req.raw), received_bytes: received.byteLength, identity, request_id: c.req.header("x-request-id") ?? null });
    return c.body(body + "\n", 200, { "content-type": "application/json" });
  });
  return app;
}

export async function startDemoUpstreams(ports: Readonly<Record<string, number>>, identityHeader: string): Promise<DemoUpstreams> {
  const servers: Server[] = [];
  const bound: Record<string, number> = {};
  for (const [name, port] of Object.entries(ports)) {
    const server = createServer(getRequestListener(demoUpstreamApp(name, identityHeader).fetch, { overrideGlobalObjects: false }));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve());
      });
    } catch (error) {
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      const inUse = (error as NodeJS.ErrnoException).code === "EADDRINUSE";
      throw new GatewayError(inUse ? "DEMO_UPSTREAM_PORT_IN_USE" : "DEMO_UPSTREAM_FAILED",
        `demo upstream \`${name}\` cannot listen on \`127.0.0.1:${port}\`: ${inUse ? "the port is in use (is another demo gateway running on this machine?)" : (error as Error).message}`);
    }
    servers.push(server);
    const addr = server.address();
    bound[name] = typeof addr === "object" && addr ? addr.port : port;
  }
  return {
    ports: bound,
    close: () => Promise.all(servers.map((s) => new Promise<void>((r) => { s.closeAllConnections?.(); s.close(() => r()); }))).then(() => {}),
  };
}
