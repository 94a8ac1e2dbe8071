// What a stage of the request pipeline is, and the loop that runs a channel's stages in order.
//
// A stage is a named pair of plain functions over the request's state: `enter` on the way in
// (answer, or pass on), `leave` on the way back (settle what it holds, once the answer is
// known). The loop calls them directly: no context object, no `next` closure, no promise of
// its own for a stage that finishes synchronously. It is the onion of Hono's and Koa's
// middleware with the part after `await next()` as a function of its own, which is what lets
// one loop run it.
import type { Logger } from "../log.ts";
import { internalErrorResponse, type RequestState } from "./env.ts";

/** What `enter` returns: an answer ends the way in there; `undefined` passes the request on. */
export type StageResult = Response | undefined;

/** One stage of the pipeline. */
export interface Stage {
  /** The stage's name in `PIPELINE_STAGES` (logs, tests). */
  readonly name: string;
  /** On the way in. A stage that answers has no `leave` called: it settles what it holds itself. */
  enter(s: RequestState): StageResult | Promise<StageResult>;
  /**
   * On the way back, once the request is answered (`s.response`), for every stage whose `enter`
   * passed on, the last one first; an exception on the way included (`s.failed`).
   */
  leave?(s: RequestState): void | Promise<void>;
}

/** What answers a request every stage passed on (the admin functions, on the admin channel). */
export type AfterStages = (s: RequestState) => Response | Promise<Response>;

/**
 * Runs `stages` in order over `s`, then `after` if each passed on; then the `leave` of each stage
 * that passed on, the last one first; resolves to the answer. An exception (in a stage, in
 * `after`, in a `leave`) is logged and answered `500 INTERNAL_ERROR` here, nothing forwarded,
 * with `s.failed` set for the `leave`s still to run: they release what they hold and record it.
 */
export async function runStages(stages: readonly Stage[], s: RequestState, after: AfterStages, log: Logger): Promise<Response> {
  // The stages before `passed` passed the request on.
  let passed = 0;
  try {
    let answer: StageResult;
    for (; passed < stages.length; passed++) {
      const result = stages[passed]!.enter(s);
      // A stage that finished synchronously costs no await.
      answer = result instanceof Promise ? await result : result;
      if (answer !== undefined) break;
    }
    s.response = answer ?? (await after(s));
  } catch (error) {
    fail(s, log, error);
  }
  while (passed > 0) {
    const stage = stages[--passed]!;
    if (stage.leave === undefined) continue;
    try {
      const settled = stage.leave(s);
      if (settled !== undefined) await settled;
    } catch (error) {
      fail(s, log, error);
    }
  }
  return s.response;
}

/** The request ends in a failure of the gateway: logged, answered 500; the stages record it. */
function fail(s: RequestState, log: Logger, error: unknown): void {
  // The first stage names the request before anything can fail; an id all the same if it did not.
  const requestId = s.requestId ?? crypto.randomUUID();
  log.error("request failed inside the gateway", { request_id: requestId, error: (error as Error)?.message ?? String(error) });
  s.failed = true;
  s.verdict = { duty: "", decision: "error" };
  s.response = internalErrorResponse(requestId);
}
