// The gateway assembled: start-up (`startGateway`, the banner, the state workers share), the
// request pipeline behind it, logs, metrics, and the explain answers of `POST /-/explain`,
// `gateway explain` and the playground. Other folders import the gateway only from here.
export { explainRequest, renderExplanation } from "./explain.ts";
export type { ExplainInput, Explanation } from "./explain.ts";
export { openPostgresFromConfig } from "./ledger.ts";
export { createLogger, withFields } from "./log.ts";
export type { Logger } from "./log.ts";
export { SupervisorMetrics } from "./metrics.ts";
export { policyInputNames, principalToJson, replayFieldsOf } from "./replay-fields.ts";
export type { PolicyInputNames, ReplayFields } from "./replay-fields.ts";
export { prepareWorkerState, startGateway, startupBanner } from "./serve.ts";
