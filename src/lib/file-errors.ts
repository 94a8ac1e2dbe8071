// File-system and socket failures (`ENOENT`, `EACCES`, …) in words, for messages: every
// `cannot read \`x\`: …` of the gateway names the reason the same way.

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EEXIST: "already exists",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EADDRINUSE: "address already in use",
};

/** The errno code of a system error (`ENOENT`), or null for any other value. */
export function errnoOf(e: unknown): string | null {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : null;
}

/**
 * A system error as a short reason: `no such file or directory`; an errno without words in
 * lowercase (`emfile`); anything else its message.
 *
 * @example fileErrorReason(Object.assign(new Error(), { code: "EACCES" })) // "permission denied"
 */
export function fileErrorReason(e: unknown): string {
  const code = errnoOf(e);
  if (code !== null) return ERRNO_TEXT[code] ?? code.toLowerCase();
  return e instanceof Error ? e.message : String(e);
}
