// `gateway play [DIR] [--listen HOST:PORT] [--allow-non-loopback]`: the playground page on
// loopback. The policy files and policy tests of DIR (default `policies`, else the embedded examples) are what the
// page starts from; the page keeps its edits and never writes them back.
import { existsSync, statSync } from "node:fs";
import { parseArgs } from "./args.ts";
import { parseAddress } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import { EXAMPLE_POLICY_FILES } from "../init/mod.ts";
import { classifyPolicyFiles, readPolicyDirectory } from "../policy/mod.ts";
import { DEFAULT_PLAY_LISTEN, startPlayServer, type PlayServer, type PlaySource } from "../play/mod.ts";
import type { Io } from "./io.ts";

/** Parameters of `gateway play`. */
export interface PlayParams {
  /** Policy directory; null: `policies` when it exists, else the embedded examples. */
  dir: string | null;
  host: string;
  port: number;
  allowNonLoopback: boolean;
}

/** Parses the arguments of `gateway play`; throws `GatewayError` `USAGE` on a bad one. */
export function parsePlayArgs(argv: readonly string[]): PlayParams {
  const a = parseArgs(argv, { values: ["listen"], booleans: ["allow-non-loopback"] });
  if (a.positionals.length > 1) throw new GatewayError("USAGE", "play takes one policy directory");
  const listen = a.flags.listen ?? DEFAULT_PLAY_LISTEN;
  const address = parseAddress(listen);
  if (!address) throw new GatewayError("USAGE", `\`--listen\` needs \`host:port\` (e.g. \`${DEFAULT_PLAY_LISTEN}\`), got \`${listen}\``);
  return { dir: a.positionals[0] ?? null, host: address.host, port: address.port, allowNonLoopback: a.booleans.has("allow-non-loopback") };
}

/** Where the page's files come from: the directory, re-read on each page load, or the examples. */
export function playSource(dir: string | null): PlaySource {
  const chosen = dir ?? (existsSync("policies") ? "policies" : null);
  if (chosen === null) {
    return { label: "the example policies (no policies/ here)", read: () => EXAMPLE_POLICY_FILES.map((f) => ({ path: f.path, text: f.text })) };
  }
  if (!existsSync(chosen) || !statSync(chosen).isDirectory()) throw new GatewayError("PLAY_NO_DIRECTORY", `policy directory \`${chosen}\` does not exist`);
  const read = () => {
    const { policies, tests } = classifyPolicyFiles(readPolicyDirectory(chosen), "");
    return [...policies, ...tests];
  };
  if (!read().some((f) => f.path.endsWith(".duty"))) throw new GatewayError("PLAY_NO_POLICY", `no \`.duty\` files under \`${chosen}\``);
  return { label: `${chosen.replace(/\/+$/, "")}/`, read };
}

/**
 * Starts the playground and prints where it listens; the server runs until the process stops.
 * @example const server = await runPlay(parsePlayArgs(["policies", "--listen", "127.0.0.1:0"]), processIo); await server.close();
 */
export async function runPlay(params: PlayParams, io: Io): Promise<PlayServer> {
  const source = playSource(params.dir);
  const server = await startPlayServer({ source, host: params.host, port: params.port, allowNonLoopback: params.allowNonLoopback });
  io.out(`dutygate playground on ${server.url} (policy: ${source.label}; edits stay in the page, nothing is written)`);
  return server;
}
