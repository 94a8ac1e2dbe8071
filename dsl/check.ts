// The type checker: resolves every name, types every expression, and finds the policy mistakes a
// reviewer would miss (overlapping duties, grants that can never apply, expired exceptions). It
// runs as a list of named passes over one shared context (dsl/check/context.ts), each pass
// reading what the passes before it declared; every pass runs and all diagnostics are collected.
// A policy with an error yields no CheckedPolicy.
import type { PolicyFile } from "./ast.ts";
import { hasErrors } from "./diagnostics.ts";
import { CheckContext } from "./check/context.ts";
import { checkForbids, checkGrants, findShadowedGrants } from "./check/grants.ts";
import { checkRuleIds, declareConditions, declareRolesAndEnums, declareUpstreams, reportUnusedNames, resolveGroups } from "./check/names.ts";
import { checkDuties } from "./check/routes.ts";
import { checkExclusives, checkSeparations } from "./check/sod.ts";
import { checkPrincipalSchema } from "./check/types.ts";
import type { CheckedPolicy } from "./typed-ast.ts";
import type { Diagnostic, PrincipalSchema } from "./types.ts";

export interface CheckOptions {
  /** "Now" for `until` checks, epoch ms. */
  now?: number;
  /** Days before an `until` date at which a warning is given. */
  untilWarningDays?: number;
}

export interface CheckResult {
  policy: CheckedPolicy | null;
  diagnostics: Diagnostic[];
}

export interface CheckPass {
  name: string;
  run: (cx: CheckContext) => void;
}

/**
 * The checker's passes, in the order they run. The order is the dependency order: a pass reads
 * only what passes above it declared (duties need upstreams, groups need roles and duties,
 * grants need the exclusives), and it is also the order diagnostics are emitted in.
 */
export const CHECK_PASSES: readonly CheckPass[] = [
  { name: "rule-ids", run: checkRuleIds },
  { name: "roles-and-enums", run: declareRolesAndEnums },
  { name: "upstreams", run: declareUpstreams },
  { name: "principal-schema", run: checkPrincipalSchema },
  { name: "duties", run: checkDuties },
  { name: "groups", run: resolveGroups },
  { name: "conditions", run: declareConditions },
  { name: "exclusives", run: checkExclusives },
  { name: "grants", run: checkGrants },
  { name: "forbids", run: checkForbids },
  { name: "shadowed-grants", run: findShadowedGrants },
  { name: "separations", run: checkSeparations },
  { name: "unused-names", run: reportUnusedNames },
];

export function checkPolicy(files: readonly PolicyFile[], options: CheckOptions = {}): CheckResult {
  const cx = new CheckContext(files, options.now ?? Date.now(), (options.untilWarningDays ?? 14) * 86_400_000);
  for (const pass of CHECK_PASSES) pass.run(cx);
  if (hasErrors(cx.diagnostics)) return { policy: null, diagnostics: cx.diagnostics };
  const { schema, roles, enums, upstreams, duties, grants, forbids, exclusives, separations } = cx;
  return {
    policy: { files: files.map((f) => f.file), schema: schema as PrincipalSchema, roles, enums: Object.fromEntries(enums), upstreams, duties, grants, forbids, exclusives, separations },
    diagnostics: cx.diagnostics,
  };
}
