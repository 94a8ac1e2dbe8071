// What `gateway init` writes (src/cli/init.ts is the command): the texts embedded in the
// program (example policies, starter config).
export { initFileList, STARTER_LISTEN_ADDRESS, starterConfigText, writeExamplePolicies, writeStarterFiles, type StarterOptions } from "./init.ts";
export { EXAMPLE_POLICY_FILES, STARTER_CONFIG_TEMPLATE } from "./embedded.ts";
