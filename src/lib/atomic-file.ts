// Crash-safe file replacement: a reader sees the old file or the new one, never a torn one.
// Write a temporary sibling, fsync it, rename it over the target (atomic on POSIX, rename(2)),
// then fsync the directory so the rename itself survives a power loss.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

/**
 * The temporary name starts with `..` on purpose: bundle listings skip such names (the Kubernetes
 * ConfigMap convention), so a half-written manifest is never mistaken for a policy file.
 */
function temporarySibling(path: string): string {
  return join(dirname(path), `..${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

function fsyncDirectorySync(dir: string): void {
  // Directories cannot be opened for fsync on every platform (Windows); durability there is best effort.
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Atomically replaces `path` with `data` (async). */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = temporarySibling(path);
  try {
    const handle = await open(tmp, "wx", mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
  fsyncDirectorySync(dirname(path));
}

/** Atomically replaces `path` with `data` (sync, for state that must be durable before returning). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = temporarySibling(path);
  try {
    const fd = openSync(tmp, "wx", mode);
    try {
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
  fsyncDirectorySync(dirname(path));
}
