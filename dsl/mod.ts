// The public face of the `.duty` language. The gateway (src/) imports the language only from here;
// the language imports nothing from the gateway.
//
// @example
// const { policy, diagnostics } = loadPolicy([{ path: "policies/changes.duty", text }]);
// if (policy) {
//   const compiled = compilePolicy(policy);
//   const decision = compiled.decide("operational", principal, request);
//   decision.allow; decision.code; decision.decidedBy; decision.reasons;
// }
export type * from "./types.ts";
export type { PolicyFile, Declaration, Expr, Name, TypeRef } from "./ast.ts";
export type { CheckedPolicy, CheckedDuty, CheckedGrant, CheckedForbid, CheckedExclusive, CheckedSeparation, TExpr, Segment } from "./typed-ast.ts";
export type { PolicySource, LoadOptions, LoadResult, ParseResult } from "./load.ts";
export type { CompiledPolicy } from "./compile.ts";
export type { GithubAnnotationProperties } from "./diagnostics.ts";
export type { CheckOptions } from "./check.ts";

/** Parses and type-checks `.duty` sources as one policy (null policy when any error). */
export { loadPolicy, checkParsedPolicy, parsePolicySource, DEFAULT_MAX_ERRORS_PER_FILE } from "./load.ts";
/**
 * The built-in upstream of the gateway's admin functions; the checker refuses a duty on it that
 * is not `channel admin` (`E_GATEWAY_DUTY_NOT_ADMIN`).
 * @example
 * duty.upstream === GATEWAY_UPSTREAM && channel === "admin" // the only way to reach them
 */
export { GATEWAY_UPSTREAM } from "./check/routes.ts";
/**
 * The canonical layout of a `.duty` source (`gateway fmt`): null text when it does not parse.
 * @example formatPolicySource({ path: "a.duty", text: "role  a,b" }).text // "role a, b\n"
 */
export { formatPolicySource, formatParsedPolicy } from "./format.ts";
export type { FormatResult } from "./format.ts";
/** Compiles a checked policy into routers and decision trees. */
export { compilePolicy } from "./compile.ts";
/** The header and query names a policy's conditions read (per duty: `CompiledPolicy.queryNamesRead`). */
export { inputNamesOf, policyInputNames } from "./inputs.ts";
export type { PolicyInputNames } from "./inputs.ts";
/** The slow, obviously-correct reference evaluator; the compiled tree must agree with it. */
export { interpretDecision, interpretRoute } from "./interpret.ts";
/** What explain adds to a decision: failing sub-conditions with their values, route near misses. */
export { explainDecision, explainCondition, routeNearMisses } from "./explain.ts";
export type { ConditionFact, DecisionDetail } from "./explain.ts";
/** Who may do what: a duty's decision as a condition, with what is known folded in (`gateway query`). */
export { queryDuty, dutiesOf, partialEvaluate } from "./query.ts";
export type { DutyQuery, OpenGrant, OpenDenial } from "./query.ts";
/** Typed expressions and values as policy text. */
export { exprText, valueText } from "./render-expr.ts";
/** Diagnostics rendering: `file:line:col: error[CODE]: message` with a caret line, or GitHub annotations. */
export { renderDiagnostic, renderGithubAnnotation, githubAnnotation, sortDiagnostics, hasErrors, didYouMean, closestMatch, editDistance } from "./diagnostics.ts";
export { coercePrincipal, coerceValue, parseIp, parseCidr, cidrContains, parseDuration, parseTime, typeToString } from "./values.ts";
/** A route param value as a duty-ledger key: decoded once, NFC, trimmed (docs/ledger.md, "Keys"). */
export { canonicalLedgerKey, compositeLedgerKey } from "./ledger-key.ts";
/** Policy tests (`*.test.toml`) and their `history`. */
export { runPolicyTests, listPolicyTests, readHistory } from "./policy-tests.ts";
export type { PolicyTestResult, PolicyTestName } from "./policy-tests.ts";
/**
 * History separation: the one rule for what conflicts (every ledger store, the pipeline, policy
 * tests, explain and replay judge through it) and the one deny message.
 * @example
 * const conflict = findSeparationConflict(decision.separations, sub, decision.duty, facts);
 * if (conflict) decision = denyForSeparation(decision, conflict, facts, { reader: "caller", showTime: true });
 */
export { findSeparationConflict, describeSeparationConflict, denyForSeparation, applyHistory, showKey } from "./separation.ts";
export type { SeparationConflict, SeparationWording, HistoryStep } from "./separation.ts";
/** Static analysis: the separation-of-duties reachability table, admin exposure, role assignments, the role × duty matrix. */
export { analyzeSeparation, checkAssignments, renderReachabilityTable, roleDutyMatrix } from "./analysis.ts";
export type { ReachabilityRow, SeparationAnalysis, AssignmentViolation, RoleDutyMatrix, MatrixGrant } from "./analysis.ts";
/** Rule coverage of the policy tests: per rule, whether a test saw it allow and saw it deny. */
export { policyCoverage } from "./coverage.ts";
export type { PolicyCoverage, RuleCoverage } from "./coverage.ts";
