// A tiny HTTP/1.1 client over one TLS socket, so tests decide exactly which connection a request
// uses (fetch pools connections behind our back). Test use only; every wait is bounded.
import { connect, type ConnectionOptions, type TLSSocket } from "node:tls";

export interface TestConnection {
  socket: TLSSocket;
  /** Subject CN of the certificate the server presented on this connection. */
  serverCN(): string | undefined;
  request(method: string, path: string, options?: { headers?: Record<string, string>; body?: string; chunked?: boolean }): Promise<{ status: number; headers: string; body: string }>;
  close(): void;
}

export async function openConnection(port: number, options: ConnectionOptions = {}): Promise<TestConnection> {
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"], ...options }, () => resolve(s));
    s.once("error", reject);
    s.setTimeout(10_000, () => s.destroy(new Error("test connection timed out")));
  });
  let buffer = "";
  let closed = false;
  let wake: (() => void) | null = null;
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => { buffer += chunk; wake?.(); });
  socket.on("close", () => { closed = true; wake?.(); });
  socket.on("error", () => { closed = true; wake?.(); });

  const parse = (): { status: number; headers: string; body: string } | null => {
    const end = buffer.indexOf("\r\n\r\n");
    if (end < 0) return null;
    const headers = buffer.slice(0, end);
    const status = Number(headers.slice(9, 12));
    const length = /\r\ncontent-length: *(\d+)/i.exec(headers);
    if (length) {
      const n = Number(length[1]);
      if (buffer.length < end + 4 + n) return null;
      const body = buffer.slice(end + 4, end + 4 + n);
      buffer = buffer.slice(end + 4 + n);
      return { status, headers, body };
    }
    if (/\r\ntransfer-encoding: *chunked/i.test(headers)) {
      let at = end + 4, body = "";
      for (;;) {
        const lineEnd = buffer.indexOf("\r\n", at);
        if (lineEnd < 0) return null;
        const size = parseInt(buffer.slice(at, lineEnd), 16);
        if (buffer.length < lineEnd + 2 + size + 2) return null;
        if (size === 0) { buffer = buffer.slice(lineEnd + 4); return { status, headers, body }; }
        body += buffer.slice(lineEnd + 2, lineEnd + 2 + size);
        at = lineEnd + 2 + size + 2;
      }
    }
    buffer = buffer.slice(end + 4);
    return { status, headers, body: "" };
  };

  return {
    socket,
    serverCN: () => (socket.getPeerCertificate() as { subject?: { CN?: string } }).subject?.CN,
    async request(method, path, options = {}) {
      const headers = { host: "localhost", connection: "keep-alive", ...options.headers };
      let head = `${method} ${path} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      if (options.body !== undefined && !options.chunked) head += `content-length: ${Buffer.byteLength(options.body)}\r\n`;
      if (options.chunked) head += "transfer-encoding: chunked\r\n";
      let payload = head + "\r\n";
      if (options.body !== undefined) {
        payload += options.chunked ? `${Buffer.byteLength(options.body).toString(16)}\r\n${options.body}\r\n0\r\n\r\n` : options.body;
      }
      socket.write(payload);
      for (let i = 0; i < 400; i++) {
        const response = parse();
        if (response) return response;
        if (closed) throw new Error("connection closed before a response");
        await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, 50); });
        wake = null;
      }
      throw new Error("no response within 20s");
    },
    close: () => socket.end(),
  };
}

/** Handshake only: resolves with the served certificate's CN and protocol, or rejects with the TLS error. */
export function handshake(port: number, options: ConnectionOptions = {}): Promise<{ cn: string | undefined; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...options }, () => {
      const cn = (socket.getPeerCertificate() as { subject?: { CN?: string } }).subject?.CN;
      const protocol = socket.getProtocol();
      socket.end();
      resolve({ cn, protocol });
    });
    socket.once("error", reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error("handshake timed out")));
  });
}
