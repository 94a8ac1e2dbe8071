// The one access scenario every engine of the peer benchmark decides, written once as plain data:
// roles, duties (method + route pattern), grants and forbids with conditions from a small closed
// vocabulary, 500 principals and 10,000 request tuples from a fixed seed. The translators in
// translate.ts turn it into a `.duty` policy, Cedar policies + schema + entities, a Casbin model +
// policy, and a hand-written JavaScript evaluator.
//
// The base variant is an engineering organisation's gateway (~40 duties, 10 roles): maker/checker
// on changes and configs ("approver is not the author": the request carries the author in
// `x-change-author`), deploys that need MFA in prod (`x-env: prod`), auditors and SREs reading
// logs, admin routes for security_admin with MFA, a change freeze (`x-freeze: 1`) on deploys and a
// global forbid for suspended principals. The scaled variant repeats it under 16 tenant prefixes
// with seeded variations (other roles, team conditions) to reach ~1,000 rules.
import { createRng, type Rng } from "../gen-policy.ts";

/** A condition atom; a rule's `when` is the conjunction of its atoms (empty: always). */
export type Cond =
  | { k: "mfa" }
  /** Maker/checker within one request: `principal.sub != request.header["x-change-author"]`. */
  | { k: "notAuthor" }
  /** `request.header["x-env"] != "prod" or principal.mfa`. */
  | { k: "prodNeedsMfa" }
  | { k: "team"; team: string }
  /** `request.header["x-freeze"] == "1"` (used by forbids). */
  | { k: "freeze" }
  /** `principal.suspended` (used by forbids). */
  | { k: "suspended" };

export interface ScenarioDuty {
  name: string;
  method: string;
  /** Route pattern: literal segments, `:param` segments, an optional trailing `*`. */
  pattern: string;
  upstream: string;
}

export interface ScenarioGrant {
  duty: string;
  /** Any of these roles. */
  roles: string[];
  when: Cond[];
}

export interface ScenarioForbid {
  /** `"*"`: every duty. */
  duties: "*" | string[];
  /** Never empty. */
  when: Cond[];
}

export interface Scenario {
  name: string;
  roles: string[];
  teams: string[];
  upstreams: string[];
  duties: ScenarioDuty[];
  grants: ScenarioGrant[];
  forbids: ScenarioForbid[];
}

/** A principal as the authenticator would hand it over (untyped claims). */
export interface ScenarioPrincipal {
  sub: string;
  roles: string[];
  mfa: boolean;
  team: string;
  suspended: boolean;
}

/** One request to decide: who, the raw method and path, and the headers the rules read. */
export interface RequestTuple {
  principal: number;
  method: string;
  path: string;
  /** Lower-case header name → value; absent headers are absent. */
  headers: Record<string, string>;
}

export const ROLES = ["developer", "reviewer", "deployer", "release_manager", "sre", "oncall", "auditor", "analyst", "support", "security_admin"];
export const TEAMS = ["core", "payments", "search", "infra", "mobile", "data"];
const UPSTREAMS = ["changes", "deploy", "logs", "incidents", "configs", "secrets", "admin", "reports"];

const mfa: Cond = { k: "mfa" };
const notAuthor: Cond = { k: "notAuthor" };
const prodNeedsMfa: Cond = { k: "prodNeedsMfa" };

// [name, method, pattern, upstream, grants as [roles, conditions]]
type DutyRow = [string, string, string, string, Array<[string[], Cond[]]>];
const BASE_DUTIES: DutyRow[] = [
  // Changes: maker (developer) / checker (reviewer, not the author) / deployer.
  ["list_changes", "GET", "/changes", "changes", [[["developer", "reviewer", "deployer", "release_manager", "sre"], []]]],
  ["create_change", "POST", "/changes", "changes", [[["developer"], []]]],
  ["read_change", "GET", "/changes/:change", "changes", [[["developer", "reviewer", "deployer", "release_manager", "sre", "auditor"], []]]],
  ["update_change", "PUT", "/changes/:change", "changes", [[["developer"], []]]],
  ["submit_change", "POST", "/changes/:change/submit", "changes", [[["developer"], []]]],
  ["approve_change", "POST", "/changes/:change/approve", "changes", [[["reviewer"], [notAuthor]], [["release_manager"], [notAuthor, mfa]]]],
  ["reject_change", "POST", "/changes/:change/reject", "changes", [[["reviewer", "release_manager"], [notAuthor]]]],
  ["deploy_change", "POST", "/changes/:change/deploy", "deploy", [[["deployer"], [prodNeedsMfa]], [["release_manager"], [prodNeedsMfa, notAuthor]]]],
  ["rollback_change", "POST", "/changes/:change/rollback", "deploy", [[["deployer", "sre"], [prodNeedsMfa]]]],
  ["list_comments", "GET", "/changes/:change/comments", "changes", [[["developer", "reviewer", "release_manager"], []]]],
  ["add_comment", "POST", "/changes/:change/comments", "changes", [[["developer", "reviewer"], []]]],
  // Deploys.
  ["list_deploys", "GET", "/deploys", "deploy", [[["deployer", "release_manager", "sre", "oncall", "auditor"], []]]],
  ["read_deploy", "GET", "/deploys/:deploy", "deploy", [[["deployer", "release_manager", "sre", "oncall", "auditor"], []]]],
  ["start_deploy", "POST", "/deploys", "deploy", [[["deployer"], [prodNeedsMfa]], [["sre"], [mfa]]]],
  ["cancel_deploy", "POST", "/deploys/:deploy/cancel", "deploy", [[["deployer", "sre", "oncall"], [prodNeedsMfa]]]],
  ["approve_deploy", "POST", "/deploys/:deploy/approve", "deploy", [[["release_manager"], [notAuthor, prodNeedsMfa]]]],
  // Logs and audit trails: auditors and SREs read logs.
  ["read_logs", "GET", "/logs/*", "logs", [[["auditor", "sre"], []], [["oncall"], [mfa]]]],
  ["read_audit", "GET", "/audit/*", "logs", [[["auditor"], []], [["security_admin"], [mfa]]]],
  ["export_audit", "POST", "/audit/export", "logs", [[["auditor"], [mfa]]]],
  // Incidents.
  ["list_incidents", "GET", "/incidents", "incidents", [[["sre", "oncall", "support", "developer"], []]]],
  ["read_incident", "GET", "/incidents/:incident", "incidents", [[["sre", "oncall", "support", "developer", "auditor"], []]]],
  ["open_incident", "POST", "/incidents", "incidents", [[["sre", "oncall", "support"], []]]],
  ["update_incident", "PATCH", "/incidents/:incident", "incidents", [[["sre", "oncall"], []]]],
  ["close_incident", "POST", "/incidents/:incident/close", "incidents", [[["sre"], [notAuthor]], [["oncall"], [notAuthor, mfa]]]],
  ["page_incident", "POST", "/incidents/:incident/page", "incidents", [[["oncall", "sre"], []]]],
  // Service configuration: maker/checker again.
  ["read_config", "GET", "/configs/:service", "configs", [[["developer", "sre", "reviewer"], []]]],
  ["propose_config", "PUT", "/configs/:service", "configs", [[["developer", "sre"], []]]],
  ["approve_config", "POST", "/configs/:service/approve", "configs", [[["reviewer"], [notAuthor]], [["sre"], [notAuthor, mfa]]]],
  ["delete_config", "DELETE", "/configs/:service", "configs", [[["sre"], [mfa, notAuthor]]]],
  // Secrets.
  ["read_secret", "GET", "/secrets/:name", "secrets", [[["sre"], [mfa]]]],
  ["write_secret", "PUT", "/secrets/:name", "secrets", [[["security_admin"], [mfa, notAuthor]]]],
  // Admin routes: security_admin with MFA.
  ["list_users", "GET", "/admin/users", "admin", [[["security_admin"], [mfa]], [["auditor"], []]]],
  ["set_user_roles", "PUT", "/admin/users/:user/roles", "admin", [[["security_admin"], [mfa, notAuthor]]]],
  ["delete_user", "DELETE", "/admin/users/:user", "admin", [[["security_admin"], [mfa]]]],
  ["read_security", "GET", "/admin/security/*", "admin", [[["security_admin"], [mfa]]]],
  ["write_security", "PUT", "/admin/security/*", "admin", [[["security_admin"], [mfa]]]],
  ["rotate_keys", "POST", "/admin/keys/rotate", "admin", [[["security_admin"], [mfa]]]],
  ["list_sessions", "GET", "/admin/sessions", "admin", [[["security_admin"], [mfa]], [["support"], [mfa]]]],
  ["revoke_session", "DELETE", "/admin/sessions/:session", "admin", [[["security_admin"], [mfa]], [["support"], [mfa]]]],
  // Reports.
  ["read_report", "GET", "/reports/:report", "reports", [[["analyst", "auditor"], []]]],
  ["run_report", "POST", "/reports/:report/run", "reports", [[["analyst"], []]]],
];

const DEPLOY_DUTIES = ["deploy_change", "rollback_change", "start_deploy", "approve_deploy"];

/** The base scenario: 41 duties, 10 roles, ~50 grants, 2 forbids. */
export function baseScenario(): Scenario {
  return {
    name: "base",
    roles: ROLES,
    teams: TEAMS,
    upstreams: UPSTREAMS,
    duties: BASE_DUTIES.map(([name, method, pattern, upstream]) => ({ name, method, pattern, upstream })),
    grants: BASE_DUTIES.flatMap(([name, , , , grants]) => grants.map(([roles, when]) => ({ duty: name, roles, when }))),
    forbids: [
      { duties: "*", when: [{ k: "suspended" }] },
      { duties: DEPLOY_DUTIES, when: [{ k: "freeze" }] },
    ],
  };
}

/**
 * The scaled scenario: the base repeated under `/t<k>` tenant prefixes, with seeded variations
 * (a role swapped, a team condition added, an extra grant) so that no two tenants are alike.
 * 16 tenants give ~650 duties and ~1,000 rules.
 */
export function scaledScenario(tenants = 16, seed = 7): Scenario {
  const rng = createRng(seed);
  const base = baseScenario();
  const duties: ScenarioDuty[] = [];
  const grants: ScenarioGrant[] = [];
  const forbids: ScenarioForbid[] = [{ duties: "*", when: [{ k: "suspended" }] }];
  for (let t = 0; t < tenants; t++) {
    const rename = (d: string) => `${d}_t${t}`;
    for (const d of base.duties) duties.push({ ...d, name: rename(d.name), pattern: `/t${t}${d.pattern}` });
    for (const g of base.grants) {
      const roles = g.roles.map((r) => (rng.chance(0.1) ? rng.pick(ROLES) : r));
      const when: Cond[] = [...g.when];
      if (rng.chance(0.2)) when.push({ k: "team", team: rng.pick(TEAMS) });
      grants.push({ duty: rename(g.duty), roles: [...new Set(roles)], when });
      if (rng.chance(0.3)) grants.push({ duty: rename(g.duty), roles: [rng.pick(ROLES)], when: [rng.pick<Cond>([{ k: "mfa" }, { k: "team", team: rng.pick(TEAMS) }, { k: "notAuthor" }])] });
    }
    forbids.push({ duties: DEPLOY_DUTIES.map(rename), when: [{ k: "freeze" }] });
  }
  return { name: "scaled", roles: ROLES, teams: TEAMS, upstreams: UPSTREAMS, duties, grants, forbids };
}

/** Number of rules (grants + forbids) of a scenario. */
export function ruleCount(s: Scenario): number {
  return s.grants.length + s.forbids.length;
}

/** 500 principals holding one to three roles, 70% with MFA, 3% suspended. Fixed seed. */
export function scenarioPrincipals(s: Scenario, count = 500, seed = 11): ScenarioPrincipal[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, (_, i) => {
    const roles = new Set<string>();
    const n = 1 + rng.int(3);
    while (roles.size < n) roles.add(rng.pick(s.roles));
    return { sub: `user${i}`, roles: [...roles], mfa: rng.chance(0.7), team: rng.pick(s.teams), suspended: rng.chance(0.03) };
  });
}

function concretePath(rng: Rng, pattern: string): string {
  let path = pattern
    .split("/")
    .map((seg) => (seg.startsWith(":") ? (rng.chance(0.5) ? `c${rng.int(5000)}` : String(rng.int(100000))) : seg))
    .join("/");
  // A trailing `*` takes one to three more segments (never zero: Casbin's keyMatch2 reads `/logs/*`
  // as `^/logs/.*$`, which `/logs` does not match, while dutygate's router does; see README).
  if (path.endsWith("/*")) path = path.slice(0, -2) + Array.from({ length: 1 + rng.int(3) }, () => `/f${rng.int(50)}`).join("");
  return path;
}

/**
 * 10,000 request tuples from a fixed seed: mostly existing routes with concrete params, 5% unknown
 * paths, 3% a method the route lacks; `x-change-author` is the caller itself 40% of the time,
 * someone else 50%, absent 10%; `x-env` prod 50%, staging 40%, absent 10%; `x-freeze: 1` 3%.
 */
export function scenarioRequests(s: Scenario, principals: readonly ScenarioPrincipal[], count = 10_000, seed = 13): RequestTuple[] {
  const rng = createRng(seed);
  const out: RequestTuple[] = [];
  for (let i = 0; i < count; i++) {
    const principal = rng.int(principals.length);
    const d = rng.pick(s.duties);
    let path = concretePath(rng, d.pattern);
    let method = d.method;
    if (rng.chance(0.05)) path = rng.pick([`/unknown/${rng.int(100)}`, `${path}/extra`, `/changes/${rng.int(9)}/merge`, `/admin/users/u${rng.int(9)}/keys`]);
    if (rng.chance(0.03)) method = rng.pick(["PATCH", "DELETE", "OPTIONS"]);
    const headers: Record<string, string> = {};
    const author = rng.next();
    if (author < 0.4) headers["x-change-author"] = principals[principal]!.sub;
    else if (author < 0.9) headers["x-change-author"] = principals[rng.int(principals.length)]!.sub;
    const env = rng.next();
    if (env < 0.5) headers["x-env"] = "prod";
    else if (env < 0.9) headers["x-env"] = "staging";
    if (rng.chance(0.03)) headers["x-freeze"] = "1";
    out.push({ principal, method, path, headers });
  }
  return out;
}
