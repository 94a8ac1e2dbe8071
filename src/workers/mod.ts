// `listen.workers` > 1: the supervisor, how a worker starts and reaches it (IPC), and merging the
// workers' metrics. Other folders import the workers only from here.
export { WORKER_ENV, parseWorkerIdentity } from "./protocol.ts";
export type { OwnReadiness, ReadinessReport, WorkerReadinessAnswer, WorkerReloadResult } from "./protocol.ts";
export { selfCommand } from "./spawn.ts";
export { startSupervisor } from "./supervisor.ts";
export type { RunningSupervisor, SupervisorEnd } from "./supervisor.ts";
export { connectToSupervisor } from "./worker-link.ts";
export type { WorkerLink } from "./worker-link.ts";
