// `gateway init` and the texts embedded in the program (example policies, starter config).
export { initFileList, runInit, starterConfigText, writeExamplePolicies, type InitParams } from "./init.ts";
export { EXAMPLE_POLICY_FILES, STARTER_CONFIG_TEMPLATE } from "./embedded.ts";
