// `gateway init [DIR] [--state-dir D] [--audit-dir D] [--listen HOST:PORT]`: a starter
// `gateway.toml` and policies/, then what to do next.
import { relative } from "node:path";
import { GatewayError } from "../errors.ts";
import { EXAMPLE_POLICY_FILES, STARTER_LISTEN_ADDRESS, writeStarterFiles, type StarterOptions } from "../init/mod.ts";
import { EXIT, type Io } from "./io.ts";

/** Parameters of {@link runInit}. */
export type InitParams = StarterOptions;

/**
 * `gateway init [DIR]`: writes `DIR/gateway.toml` and `DIR/policies/`. Exit 0 when written,
 * {@link EXIT.config} when a file exists already (nothing is written then).
 */
export async function runInit(params: InitParams, io: Io): Promise<number> {
  let dir: string;
  try {
    dir = writeStarterFiles(params);
  } catch (e) {
    if (e instanceof GatewayError && e.code === "INIT_FILE_EXISTS") {
      io.err(`error[${e.code}]: ${e.message}; nothing was written`);
      return EXIT.config;
    }
    throw e;
  }
  const shown = relative(process.cwd(), dir) || ".";
  io.out(`wrote ${shown}/gateway.toml and ${shown}/policies/ (${EXAMPLE_POLICY_FILES.length} files)`);
  const address = params.listenAddress ?? STARTER_LISTEN_ADDRESS;
  io.out(params.listenAddress === undefined
    ? `it listens on ${address} (loopback only; \`--listen 0.0.0.0:8443\` or [listen] address to serve other hosts)`
    : `it listens on ${address}`);
  io.out("next:");
  io.out(`  gateway check ${shown}/policies                      # parse, type-check and run the policy tests`);
  io.out(`  edit ${shown}/gateway.toml: [issuers.main] (your identity provider) and [upstreams.*]`);
  io.out(`  gateway serve --config ${shown}/gateway.toml`);
  return EXIT.ok;
}
