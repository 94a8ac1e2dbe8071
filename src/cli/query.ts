// `gateway query DIR --principal FILE` (every duty this person may perform, with the conditions
// still open) and `gateway query DIR --duty D` (the roles and conditions that reach a duty): the
// questions auditors ask, answered by partial evaluation of the policy (`dsl/query.ts`).
import { existsSync, statSync } from "node:fs";
import { coercePrincipal, didYouMean, dutiesOf, exprText, queryDuty, renderDiagnostic, type CheckedPolicy, type DutyQuery, type TExpr } from "../../dsl/mod.ts";
import { GatewayError } from "../errors.ts";
import { buildPolicyDirectory } from "../policy/mod.ts";
import { readPrincipalFile } from "./explain.ts";
import { EXIT, type Io } from "./io.ts";

/** Parameters of `gateway query`: exactly one of `principalFile` and `duty`. */
export interface QueryParams {
  dir: string;
  principalFile?: string;
  duty?: string;
  format?: "text" | "json";
  /** How policy files are named in rule ids (default: `dir` as given). */
  displayDir?: string;
}

const text = (e: TExpr) => exprText(e);
const always = (e: TExpr) => e.k === "const" && e.value === true;
const route = (q: DutyQuery) => `${q.duty.method} ${q.duty.pattern} -> ${q.duty.upstream}${q.duty.channel === "admin" ? " channel admin" : ""}`;

function loadForQuery(dir: string, displayDir: string, io: Io): CheckedPolicy | number {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    io.err(`error: policy directory \`${dir}\` does not exist`);
    return EXIT.usage;
  }
  // Checked as the gateway builds it; a query needs no compiled tree and no policy test.
  const build = buildPolicyDirectory(dir, { displayDir, until: "check" });
  if (build.failure?.code === "POLICY_EMPTY") {
    io.err(`error: no \`.duty\` files under \`${dir}\``);
    return EXIT.policyErrors;
  }
  if (!build.policy || build.failure) {
    for (const d of build.diagnostics) io.err(renderDiagnostic(d, build.sources));
    io.err(`error: the policy in \`${dir}\` has errors; run \`gateway check ${dir}\``);
    return EXIT.policyErrors;
  }
  return build.policy;
}

function dutyJson(q: DutyQuery) {
  return {
    duty: q.duty.name, route: `${q.duty.method} ${q.duty.pattern}`, upstream: q.duty.upstream, channel: q.duty.channel,
    allowed: text(q.allowed),
    grants: q.grants.map((g) => ({ rule: g.rule, at: g.at, roles: g.roles, condition: text(g.condition), beyondRole: text(g.beyondRole) })),
    denials: q.denials.map((d) => ({ rule: d.rule, at: d.at, kind: d.kind, condition: text(d.condition) })),
    separations: q.separations,
  };
}

/**
 * Runs `gateway query`: 0 with the answer; 1 when the policy has errors; 64 for bad input (no or
 * both of `--principal` and `--duty`, an unreadable principal file, a principal that does not
 * fit the schema, an unknown duty).
 *
 * @example await runQuery({ dir: "policies", principalFile: "alice.json" }, processIo)
 */
export async function runQuery(params: QueryParams, io: Io): Promise<number> {
  if ((params.principalFile === undefined) === (params.duty === undefined)) {
    io.err("error: query needs one of `--principal FILE` and `--duty DUTY`");
    return EXIT.usage;
  }
  const policy = loadForQuery(params.dir, params.displayDir ?? params.dir, io);
  if (typeof policy === "number") return policy;
  const json = params.format === "json";

  if (params.duty !== undefined) {
    const duty = policy.duties.find((d) => d.name === params.duty);
    if (!duty) {
      const help = didYouMean(params.duty, policy.duties.map((d) => d.name));
      io.err(`error[QUERY_UNKNOWN_DUTY]: the policy has no duty \`${params.duty}\`${help ? ` (${help})` : ""}`);
      return EXIT.usage;
    }
    const q = queryDuty(policy, duty, null);
    if (json) {
      io.out(JSON.stringify(dutyJson(q), null, 2));
      return EXIT.ok;
    }
    if (q.grants.length === 0) {
      io.out(`${duty.name} (${route(q)}) is allowed to nobody: no grant of it can apply`);
      return EXIT.ok;
    }
    io.out(`${duty.name} (${route(q)}) is allowed when one of these grants applies:`);
    const width = Math.max(...q.grants.map((g) => g.roles.join(", ").length));
    for (const g of q.grants) io.out(`  ${g.roles.join(", ").padEnd(width)}  ${always(g.beyondRole) ? "always" : `when ${text(g.beyondRole)}`}  (${g.rule})`);
    if (q.denials.length) {
      io.out("and none of these denials holds:");
      for (const d of q.denials) io.out(`  ${d.kind.padEnd(9)}  ${always(d.condition) ? "always" : text(d.condition)}  (${d.rule})`);
    }
    if (q.separations.length) io.out(`and the duty ledger finds no other duty of ${q.separations.join(", ")} done by the same person on the same key`);
    return EXIT.ok;
  }

  let raw: Record<string, unknown>;
  try {
    raw = readPrincipalFile(params.principalFile!);
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    io.err(`error[${e.code}]: ${e.message}`);
    return EXIT.usage;
  }
  const p = coercePrincipal(policy.schema, raw);
  if (!p.ok) {
    io.err(`error[${p.code}]: ${p.message}`);
    return EXIT.usage;
  }
  const principal = p.principal;
  const found = dutiesOf(policy, principal);
  if (json) {
    io.out(JSON.stringify({ principal: { sub: principal.sub, roles: [...principal.roles] }, duties: found.map(dutyJson) }, null, 2));
    return EXIT.ok;
  }
  io.out(`${principal.sub} [${[...principal.roles].join(", ")}] may perform ${found.length} of ${policy.duties.length} duties:`);
  // Nothing at all is usually a role assignment an exclusive set forbids: say which.
  const broken = policy.exclusives.filter((x) => x.roles.filter((r) => principal.roles.has(r)).length >= x.atLeast);
  for (const x of broken) io.out(`  (none: holding ${x.roles.filter((r) => principal.roles.has(r)).join(" and ")} is denied every request by ${x.id})`);
  const nameWidth = Math.max(0, ...found.map((q) => q.duty.name.length));
  const routeWidth = Math.max(0, ...found.map((q) => route(q).length));
  for (const q of found) {
    io.out(`  ${q.duty.name.padEnd(nameWidth)}  ${route(q).padEnd(routeWidth)}  ${always(q.allowed) ? "always" : `when ${text(q.allowed)}`}`);
    const by = [`by ${q.grants.filter((g) => !(g.condition.k === "const" && g.condition.value === false)).map((g) => g.rule).join(", ")}`];
    if (q.denials.length) by.push(`unless ${q.denials.map((d) => d.rule).join(", ")}`);
    if (q.separations.length) by.push(`history separation ${q.separations.join(", ")}`);
    io.out(`  ${" ".repeat(nameWidth)}  ${by.join("; ")}`);
  }
  return EXIT.ok;
}
