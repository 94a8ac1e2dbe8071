// The public face of configuration: load a `gateway.toml`, or take the built-in default.
export type * from "./types.ts";
export { loadConfig, parseConfigText, parseAddress, type LoadConfigOptions, type LoadConfigResult } from "./load.ts";
export { defaultConfig, DEMO_ISSUER, DEMO_UPSTREAM_PORTS, demoIssuerFiles, demoAdminFiles } from "./builtin.ts";
export { ensureDemoIssuer, mintDemoToken, type DemoIssuer, type DemoTokenClaims } from "./demo.ts";
export { formatConfigErrors } from "./format.ts";
export { DEFAULTS, upstreamClient } from "./defaults.ts";
export { parseSize } from "./read.ts";
