import type { ConfigError } from "./types.ts";

/**
 * Renders config errors for people: `gateway.toml:12:1: error[CONFIG_UNKNOWN_KEY]: listen.adress: unknown key `adress``
 * followed by an indented `help:` line when there is one.
 */
export function formatConfigErrors(errors: readonly ConfigError[], source: string): string {
  return errors.map((e) => {
    const where = e.line !== undefined ? `${source}:${e.line}:${e.col ?? 1}` : source;
    return `${where}: error[${e.code}]: ${e.message}` + (e.help ? `\n  help: ${e.help}` : "");
  }).join("\n");
}
