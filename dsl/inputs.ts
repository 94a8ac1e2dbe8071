// Which request inputs a policy's conditions read: the header and query names that appear
// literally in `request.header[...]`, `request.query[...]` and `has`. The gateway records only
// these for replay, and refuses a request that gives a read query parameter more than one value.
import type { CheckedPolicy, TExpr } from "./typed-ast.ts";

/** Header names (lower case) and query names (as written) some conditions read, sorted. */
export interface PolicyInputNames {
  headers: readonly string[];
  query: readonly string[];
}

function collect(e: TExpr, headers: Set<string>, query: Set<string>): void {
  switch (e.k) {
    case "header": case "hasHeader": headers.add(e.name.toLowerCase()); return;
    case "query": case "hasQuery": query.add(e.name); return;
    case "setOf": for (const item of e.items) collect(item, headers, query); return;
    case "not": case "lower": case "neg": collect(e.operand, headers, query); return;
    case "matches": collect(e.subject, headers, query); return;
    case "in": collect(e.element, headers, query); collect(e.container, headers, query); return;
    case "and": case "or": case "eq": case "ne": case "lt": case "le": case "gt": case "ge":
    case "startsWith": case "endsWith": case "add": case "sub":
      collect(e.left, headers, query); collect(e.right, headers, query); return;
    default: return;
  }
}

/**
 * The header and query names the given conditions read.
 *
 * @example inputNamesOf([grant.when]) // { headers: [], query: ["all"] }
 */
export function inputNamesOf(conditions: Iterable<TExpr | null>): PolicyInputNames {
  const headers = new Set<string>();
  const query = new Set<string>();
  for (const e of conditions) if (e !== null) collect(e, headers, query);
  return { headers: [...headers].sort(), query: [...query].sort() };
}

const policyCache = new WeakMap<CheckedPolicy, PolicyInputNames>();

/**
 * The header and query names any condition of `policy` reads, computed once per policy.
 *
 * @example policyInputNames(compiled.policy) // { headers: ["x-freeze"], query: [] }
 */
export function policyInputNames(policy: CheckedPolicy): PolicyInputNames {
  let names = policyCache.get(policy);
  if (!names) {
    names = inputNamesOf([...policy.grants.map((g) => g.when), ...policy.forbids.map((f) => f.when)]);
    policyCache.set(policy, names);
  }
  return names;
}
