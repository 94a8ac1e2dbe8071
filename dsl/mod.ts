// The public face of the `.duty` language. The gateway (src/) imports the language only from here.
export type * from "./types.ts";
export { coercePrincipal, coerceValue, parseIp, parseCidr, cidrContains, parseDuration, parseTime, typeToString } from "./values.ts";
