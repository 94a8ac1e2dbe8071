// The bundled example upstreams of the built-in default: tiny JSON services on loopback that
// answer what they received (method, path, the identity the gateway vouched for), so that the
// demo shows allow and deny end to end with nothing else running.
import { createServer, type Server } from "node:http";
import { decodeJwt } from "jose";
import { GatewayError } from "../errors.ts";

export interface DemoUpstreams {
  ports: Record<string, number>;
  close(): Promise<void>;
}

export async function startDemoUpstreams(ports: Readonly<Record<string, number>>, identityHeader: string): Promise<DemoUpstreams> {
  const servers: Server[] = [];
  const bound: Record<string, number> = {};
  for (const [name, port] of Object.entries(ports)) {
    const server = createServer((req, res) => {
      let size = 0;
      req.on("data", (chunk: Buffer) => (size += chunk.length));
      req.on("end", () => {
        const token = req.headers[identityHeader.toLowerCase()];
        let identity: unknown = null;
        try {
          identity = typeof token === "string" ? decodeJwt(token) : null;
        } catch {
          identity = "unreadable";
        }
        const body = JSON.stringify({ upstream: name, method: req.method, path: req.url, received_bytes: size, identity, request_id: req.headers["x-request-id"] ?? null });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(body + "\n");
      });
    });
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
