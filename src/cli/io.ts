import { writeStderr, writeStdout } from "../stdio.ts";

/** Where a command writes: CLI handlers are plain functions tested without a subprocess. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

/** The process's stdout and stderr; `exitWhenDrained` waits for what it wrote. */
export const processIo: Io = {
  out: (line) => writeStdout(line + "\n"),
  err: (line) => writeStderr(line + "\n"),
};

/** Collects output in memory (tests). */
export function memoryIo(): Io & { stdout: string[]; stderr: string[]; text(): string } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => void stdout.push(l), err: (l) => void stderr.push(l), text: () => [...stdout, ...stderr].join("\n") };
}

/** Exit codes shared by every command (documented in `gateway --help`). */
export const EXIT = {
  ok: 0,
  policyErrors: 1,
  testsFailed: 2,
  decisionFlips: 3,
  verificationFailed: 4,
  sodViolations: 5,
  config: 6,
  /** `fmt --check`: files not in the canonical layout. */
  notFormatted: 7,
  /** `serve` with workers: they kept dying (more than the crash-loop bound allows), so the supervisor gave up. */
  workersCrashLoop: 8,
  usage: 64,
  /** An unexpected exception (a bug): one `error[INTERNAL_ERROR]` line, never a stack trace (sysexits EX_SOFTWARE). */
  internal: 70,
} as const;

/** Returned by a command that keeps running (`serve`, `play`, `lsp`) until a signal stops it. */
export const SERVING = -1;

