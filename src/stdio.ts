// The process's stdout and stderr, and the one way a command ends: `exitWhenDrained`.
//
// A write to a pipe is asynchronous under Bun (and in the compiled binary): what the reader has
// not taken yet waits in the process, and `process.exit` drops it — `gateway check --format json
// | (sleep 1; wc -c)` got the first 64 KiB of a 2.4 MB report. Every writer here keeps the
// promise of its last write; a write's callback runs once it left the process, and writes leave
// in order, so awaiting the last one of each stream awaits them all. (An empty write is no
// marker: Bun calls its callback at once.)

type Stream = NodeJS.WriteStream;

const lastWrite = new Map<Stream, Promise<void>>();

// A closed pipe (`gateway serve | head -1`) is the reader's choice, not an error worth a trace;
// the write's callback still runs (with the error), so `exitWhenDrained` does not wait for it.
for (const stream of [process.stdout, process.stderr]) {
  stream.on?.("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
  });
}

function write(stream: Stream, text: string): void {
  lastWrite.set(stream, new Promise<void>((resolve) => void stream.write(text, () => resolve())));
}

/** Writes `text` to stdout as is (add the newline yourself). */
export function writeStdout(text: string): void {
  write(process.stdout, text);
}

/** Writes `text` to stderr as is (add the newline yourself). */
export function writeStderr(text: string): void {
  write(process.stderr, text);
}

/**
 * Ends the process with `code` once everything written through this module has left it: the only
 * `process.exit` of the product. A reader that never reads keeps it waiting, as a blocking write
 * would.
 */
export async function exitWhenDrained(code: number): Promise<never> {
  await Promise.all(lastWrite.values());
  process.exit(code);
}
