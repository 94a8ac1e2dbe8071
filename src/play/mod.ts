// `gateway play`: the local page to edit a policy and try requests, and its API. Other folders
// import it only from here.
export { DEFAULT_PLAY_LISTEN, startPlayServer } from "./server.ts";
export type { PlayServer, PlaySource } from "./server.ts";
