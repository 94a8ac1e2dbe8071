// Raw HTTP/1.1 over one TLS connection, for requests fetch would rewrite on the way out: a
// request-target with dot segments, encoded slashes or NUL bytes, and hop-by-hop headers fetch
// refuses to send. Every wait is bounded (the socket times out; reads give up after a deadline).
import { connect, type ConnectionOptions, type TLSSocket } from "node:tls";

/** A response read off the wire: status, lower-cased headers, body as text. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const MAX_WAIT_MS = 20_000;

function parseHead(head: string): { status: number; headers: Record<string, string> } {
  const [statusLine, ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine!.split(" ")[1]), headers };
}

/** Decodes a complete chunked body (RFC 9112 §7.1), or null while more bytes are needed. */
function dechunk(buffer: Buffer): Buffer | null {
  const parts: Buffer[] = [];
  let at = 0;
  for (let guard = 0; guard < 100_000; guard++) {
    const lineEnd = buffer.indexOf("\r\n", at);
    if (lineEnd < 0) return null;
    const size = parseInt(buffer.subarray(at, lineEnd).toString("latin1"), 16);
    if (Number.isNaN(size)) throw new Error("bad chunk size in response");
    if (size === 0) return Buffer.concat(parts);
    if (buffer.length < lineEnd + 2 + size + 2) return null;
    parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  throw new Error("too many chunks in response");
}

/**
 * Sends one request exactly as written (`METHOD target HTTP/1.1`, the given header lines, an
 * optional body with its content-length) on a fresh TLS connection to `127.0.0.1:port`, and
 * reads one response. The connection is closed afterwards.
 *
 * @example
 * const r = await rawRequest(port, "POST", "/a/../admin", [["authorization", `Bearer ${token}`]]);
 */
export async function rawRequest(
  port: number,
  method: string,
  target: string,
  headers: ReadonlyArray<readonly [string, string]> = [],
  options: { body?: string; tls?: ConnectionOptions } = {},
): Promise<RawResponse> {
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"], ...options.tls }, () => resolve(s));
    s.once("error", reject);
    s.setTimeout(MAX_WAIT_MS, () => s.destroy(new Error("raw request timed out")));
  });
  try {
    let head = `${method} ${target} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nconnection: close\r\n`;
    for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
    if (options.body !== undefined) head += `content-length: ${Buffer.byteLength(options.body)}\r\n`;
    socket.write(head + "\r\n" + (options.body ?? ""));
    return await new Promise<RawResponse>((resolve, reject) => {
      let buffer = Buffer.alloc(0);
      const tryParse = (final: boolean): boolean => {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return false;
        const { status, headers: parsed } = parseHead(buffer.subarray(0, end).toString("latin1"));
        const rest = buffer.subarray(end + 4);
        let body: Buffer | null = null;
        if (parsed["content-length"] !== undefined) {
          const n = Number(parsed["content-length"]);
          body = rest.length >= n ? rest.subarray(0, n) : null;
        } else if (/chunked/i.test(parsed["transfer-encoding"] ?? "")) {
          body = dechunk(rest);
        } else if (final || status === 204 || status === 304) {
          body = rest;
        }
        if (body === null) return false;
        resolve({ status, headers: parsed, body: body.toString("utf8") });
        return true;
      };
      socket.on("data", (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        try {
          if (tryParse(false)) socket.destroy();
        } catch (e) {
          reject(e);
        }
      });
      socket.once("close", () => {
        if (!tryParse(true)) reject(new Error("connection closed before a complete response"));
      });
      socket.once("error", reject);
    });
  } finally {
    socket.destroy();
  }
}
