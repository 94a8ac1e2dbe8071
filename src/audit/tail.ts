// Reading an audit file from its end: the writer resumes the chain from the last complete
// record without reading whole files (they can be as large as `rotateBytes`).
import { open } from "node:fs/promises";

const CHUNK = 64 * 1024;
const NEWLINE = 0x0a;

/** The end of an audit file as the writer needs it on restart. */
export interface FileTail {
  /** Size as found. Character devices and the like report 0. */
  size: number;
  /** Offset just past the last newline: where the next record goes. */
  completeBytes: number;
  /** Bytes after the last newline: a torn write. */
  partial: Buffer;
  /** Text of the last complete line (without newline), or null when there is none. */
  lastLine: string | null;
}

/** Reads the last complete line and any torn tail of `path`. Reads at most what it must. */
export async function readFileTail(path: string): Promise<FileTail> {
  const handle = await open(path, "r");
  try {
    const stat = await handle.stat();
    // Only regular files have a meaningful size; a device (e.g. /dev/full) would read forever.
    const size = stat.isFile() ? stat.size : 0;
    let lastNewline = -1;
    let secondNewline = -1;
    for await (const { chunk, start } of chunksBackwards(handle, size)) {
      for (let i = chunk.length - 1; i >= 0; i--) {
        if (chunk[i] !== NEWLINE) continue;
        if (lastNewline < 0) lastNewline = start + i;
        else { secondNewline = start + i; break; }
      }
      if (secondNewline >= 0) break;
    }
    const completeBytes = lastNewline + 1;
    const partial = await readRange(handle, completeBytes, size);
    const lastLine = lastNewline < 0 ? null : (await readRange(handle, secondNewline + 1, lastNewline)).toString("utf8");
    return { size, completeBytes, partial, lastLine };
  } finally {
    await handle.close();
  }
}

/** Text of the first line of `path` (up to its newline or end), or null for an empty file. */
export async function readFirstLine(path: string, maxBytes = 1 << 20): Promise<string | null> {
  const handle = await open(path, "r");
  try {
    const parts: Buffer[] = [];
    let position = 0;
    while (position < maxBytes) {
      const buffer = Buffer.alloc(CHUNK);
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, position);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      const nl = chunk.indexOf(NEWLINE);
      if (nl >= 0) { parts.push(chunk.subarray(0, nl)); return Buffer.concat(parts).toString("utf8"); }
      parts.push(chunk);
      position += bytesRead;
    }
    return parts.length > 0 ? Buffer.concat(parts).toString("utf8") : null;
  } finally {
    await handle.close();
  }
}

/**
 * Calls `visit` with each complete line of `path` that ends before `end`, last line first,
 * until `visit` returns true. Returns whether it did.
 */
export async function scanLinesBackwards(path: string, end: number, visit: (line: string) => boolean): Promise<boolean> {
  const handle = await open(path, "r");
  try {
    // `carry` holds the bytes of the line being assembled, which began in an earlier chunk.
    let carry: Buffer[] = [];
    let first = true;
    for await (const { chunk } of chunksBackwards(handle, end)) {
      let lineEnd = chunk.length;
      for (let i = chunk.length - 1; i >= 0; i--) {
        if (chunk[i] !== NEWLINE) continue;
        if (first) { first = false; lineEnd = i; carry = []; continue; }
        const line = Buffer.concat([chunk.subarray(i + 1, lineEnd), ...carry]).toString("utf8");
        carry = [];
        lineEnd = i;
        if (line.length > 0 && visit(line)) return true;
      }
      if (!first) carry.unshift(chunk.subarray(0, lineEnd));
    }
    if (!first) {
      const line = Buffer.concat(carry).toString("utf8");
      if (line.length > 0 && visit(line)) return true;
    }
    return false;
  } finally {
    await handle.close();
  }
}

async function* chunksBackwards(handle: import("node:fs/promises").FileHandle, end: number): AsyncGenerator<{ chunk: Buffer; start: number }> {
  let position = end;
  while (position > 0) {
    const start = Math.max(0, position - CHUNK);
    yield { chunk: await readRange(handle, start, position), start };
    position = start;
  }
}

async function readRange(handle: import("node:fs/promises").FileHandle, start: number, end: number): Promise<Buffer> {
  const length = Math.max(0, end - start);
  const buffer = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, start + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buffer.subarray(0, done);
}
