// The routes pass: each duty's methods, route pattern, upstream and channel, and the rule that a
// request maps to exactly one duty (no two duties of one method and route shape on a channel).
import { didYouMean } from "../diagnostics.ts";
import type { CheckedDuty, Segment } from "../typed-ast.ts";
import { at, type CheckContext } from "./context.ts";

export const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
const CHANNELS = ["operational", "admin"] as const;
/**
 * The upstream the gateway serves itself: its admin functions (metrics, policy status, reload,
 * explain). Duties may reach it on the admin channel only.
 */
export const GATEWAY_UPSTREAM = "gateway";
const SEGMENT_TEXT = /^[A-Za-z0-9._~!$&'()+,;=@%-]+$/;

/** Parses a route pattern into segments, or says what is wrong with it. */
export function parsePattern(pattern: string): { segments: Segment[] } | { error: string; help?: string } {
  if (pattern === "/") return { segments: [] };
  const parts = pattern.slice(1).split("/");
  const segments: Segment[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p === "*") {
      if (i !== parts.length - 1) return { error: "`*` may only be the last segment of a route" };
      segments.push({ kind: "wildcard" });
    } else if (p.startsWith(":")) {
      const name = p.slice(1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { error: `bad route param \`${p}\``, help: "params look like `:change`" };
      if (seen.has(name)) return { error: `route param \`:${name}\` appears twice` };
      seen.add(name);
      segments.push({ kind: "param", name });
    } else if (p === "" || p === "." || p === "..") {
      return { error: `route \`${pattern}\` has an empty or dot segment`, help: "routes are matched against normalised paths: no `//`, `.` or `..`" };
    } else if (!SEGMENT_TEXT.test(p)) {
      return { error: `route segment \`${p}\` has characters that never appear in a normalised path` };
    } else segments.push({ kind: "literal", text: p });
  }
  return { segments };
}

/** The shape of a route with param names erased: two duties of the same shape and method overlap. */
export function routeShape(segments: readonly Segment[]): string {
  return "/" + segments.map((s) => (s.kind === "literal" ? s.text : s.kind === "param" ? ":" : "*")).join("/");
}

/** Checks every `duty` declaration; the good ones become `cx.duties`, the others `cx.brokenDuties`. */
export function checkDuties(cx: CheckContext): void {
  const shapes = new Map<string, CheckedDuty>();
  for (const d of cx.declarationsOf("duty")) {
    const first = cx.dutyByName.get(d.name.text);
    if (first) {
      cx.error("E_DUPLICATE_DUTY", `duty \`${d.name.text}\` is declared twice`, d.name.span, `first declared at ${at(first.span)}`);
      continue;
    }
    let ok = true;
    // `GET|HEAD`: one duty, several methods; each is checked where it stands in the token.
    const methods: string[] = [];
    let offset = 0;
    for (const method of d.method.text.split("|")) {
      const span = { ...d.method.span, col: d.method.span.col + offset, endCol: d.method.span.col + offset + method.length, start: d.method.span.start + offset, end: d.method.span.start + offset + method.length };
      offset += method.length + 1;
      if (!(METHODS as readonly string[]).includes(method)) {
        ok = false;
        const upper = method.toUpperCase();
        cx.error("E_BAD_METHOD", `unknown method \`${method}\``, span, (METHODS as readonly string[]).includes(upper) ? `methods are upper case: \`${upper}\`` : didYouMean(upper, METHODS) ?? `one of ${METHODS.join(", ")}`);
      } else if (methods.includes(method)) {
        ok = false;
        cx.error("E_DUPLICATE_METHOD", `method \`${method}\` appears twice in this duty`, span);
      } else methods.push(method);
    }
    const method = methods.join("|");
    const parsed = parsePattern(d.pattern.text);
    if ("error" in parsed) {
      ok = false;
      cx.error("E_BAD_ROUTE", parsed.error, d.pattern.span, parsed.help);
    }
    if (!cx.upstreams.includes(d.upstream.text)) {
      ok = false;
      cx.error("E_UNKNOWN_UPSTREAM", `unknown upstream \`${d.upstream.text}\``, d.upstream.span, didYouMean(d.upstream.text, cx.upstreams) ?? `declare it with \`upstream ${d.upstream.text}\``);
    }
    let channel: "operational" | "admin" = "operational";
    if (d.channel) {
      if (!(CHANNELS as readonly string[]).includes(d.channel.text)) {
        ok = false;
        cx.error("E_UNKNOWN_CHANNEL", `unknown channel \`${d.channel.text}\``, d.channel.span, didYouMean(d.channel.text, CHANNELS) ?? "channels are `operational` and `admin`");
      } else channel = d.channel.text as (typeof CHANNELS)[number];
    }
    if (ok && d.upstream.text === GATEWAY_UPSTREAM && channel !== "admin") {
      ok = false;
      cx.error("E_GATEWAY_DUTY_NOT_ADMIN", `duty \`${d.name.text}\` reaches the built-in \`${GATEWAY_UPSTREAM}\` upstream on the ${channel} channel`, d.span, "the gateway's admin functions answer on the admin channel only: add `channel admin`");
    }
    if (!ok || "error" in parsed) { cx.brokenDuties.add(d.name.text); continue; }
    const duty: CheckedDuty = {
      name: d.name.text, method, methods, pattern: d.pattern.text, segments: parsed.segments,
      params: parsed.segments.flatMap((s) => (s.kind === "param" ? [s.name] : [])),
      upstream: d.upstream.text, channel, span: d.span,
    };
    // Each channel has its own router: the same route on two channels is two distinct duties.
    const shapeKeys = methods.map((m) => `${channel} ${m} ${routeShape(parsed.segments)}`);
    const clash = shapeKeys.map((k) => shapes.get(k)).find((c) => c !== undefined);
    if (clash) {
      cx.brokenDuties.add(duty.name);
      cx.error("E_OVERLAPPING_DUTY", `duty \`${duty.name}\` has the same method and route as \`${clash.name}\``, d.pattern.span, `\`${clash.name}\` is declared at ${at(clash.span)}; a request must map to exactly one duty`);
      continue;
    }
    for (const k of shapeKeys) shapes.set(k, duty);
    cx.dutyByName.set(duty.name, duty);
    cx.duties.push(duty);
  }
}
