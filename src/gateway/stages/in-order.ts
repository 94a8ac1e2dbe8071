// Runs Hono middleware in order as one middleware, as Hono's own composition does, for less: a
// stage that passes on (`return next()`) costs a function call, not a promise of its own. Hono's
// compose wraps every middleware in an async step, which measured about 0.3 µs per stage per
// request (docs/performance.md, "The Hono layer"); the pipeline has eight.
//
// The contract is Hono's: a stage is `(c, next) => Response | void | Promise<Response | void>`,
// its answer becomes `c.res` unless one is already set, and once `await next()` returns, `c.res`
// is the answer of the stages after it. An exception is not caught here: it rejects the `next()`
// of every stage before it, so each can release what it holds, and the first stage answers it.
import type { Env, MiddlewareHandler } from "hono";

export function inOrder<E extends Env>(...stages: MiddlewareHandler<E>[]): MiddlewareHandler<E> {
  return (c, next) => {
    const run = (i: number): Promise<Response | void> => {
      if (i === stages.length) return next();
      let inner: Promise<Response | void> | undefined;
      const result = stages[i]!(c, () => (inner = run(i + 1)) as Promise<void>);
      // Passed through: the stages after this one already set their answer. The first stage's
      // answer is Hono's to take, as it takes any middleware's.
      if (result === inner || i === 0) return result as Promise<Response | void>;
      if (result instanceof Promise) return result.then((r) => keep(c, r));
      return Promise.resolve(keep(c, result));
    };
    return run(0);
  };
}

function keep(c: { finalized: boolean; res: Response }, answer: Response | void): Response | void {
  if (answer instanceof Response && !c.finalized) c.res = answer;
  return answer;
}
