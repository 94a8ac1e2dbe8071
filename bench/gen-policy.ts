// A deterministic generator of realistic `.duty` policies of any size, with principal and request
// samples to decide against them. The benchmark, the fuzzer and the router agreement test use it.
//
// Shape, per the shipped policies scaled up: REST-like resources under a few services (list,
// create, read, update, delete, submit/approve/deploy actions, a files wildcard), 10–50 roles,
// one to three grants per duty with conditions on MFA, team, level, client network and headers,
// occasional `until` exceptions, freeze forbids, a global lockdown `forbid *`, exclusive role
// pairs and one 2-of-3 set, and maker/checker `separate` constraints per resource.
import type { Channel, IpValue, PolicyRequest } from "../dsl/mod.ts";
import { parseIp } from "../dsl/mod.ts";

/** A small seeded PRNG (mulberry32): the same seed gives the same sequence on every runtime. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, chance: (p) => next() < p, pick: (items) => items[int(items.length)]! };
}

export interface GeneratedDuty {
  name: string;
  method: string;
  pattern: string;
  channel: Channel;
}

export interface GeneratedPolicy {
  /** Display path used in every span. */
  path: string;
  text: string;
  roles: string[];
  teams: string[];
  duties: GeneratedDuty[];
  rules: GeneratedRules;
}

const TEAMS = ["core", "ops", "payments", "search", "infra", "mobile", "data", "security"];
const SERVICES = ["billing", "catalog", "orders", "users", "deploy", "reports", "search", "ledger", "mail", "media", "auth", "flags"];
const ACTIONS = ["submit", "approve", "deploy"] as const;
/** Time every sample request is near; `until` dates in generated policies lie after it. */
export const SAMPLE_TIME = Date.UTC(2026, 5, 1, 12);

/**
 * A condition as the policy text writes it, and the same rule written by hand in plain TypeScript
 * (the baseline `bench/decision.bench.ts` measures the compiled trees against).
 */
export interface GeneratedCondition {
  text: string;
  holds(principal: HandPrincipal, request: PolicyRequest, params: HandParams): boolean;
}

/** The principal as the hand-written rules read it (a typed principal has this shape). */
export interface HandPrincipal { readonly roles: ReadonlySet<string>; readonly mfa?: unknown; readonly team?: unknown; readonly level?: unknown }
export interface HandParams { readonly id?: string }

const inV4 = (ip: IpValue, net: bigint, bits: bigint) => !ip.v6 && ip.addr >> (32n - bits) === net >> (32n - bits);
const header = (r: PolicyRequest, name: string) => r.headers[name] ?? "";

function conditionFor(rng: Rng, duty: GeneratedDuty, teams: readonly string[]): GeneratedCondition | null {
  const hasId = duty.pattern.includes(":id");
  const options: Array<() => GeneratedCondition> = [
    () => ({ text: "principal.mfa", holds: (p) => p.mfa === true }),
    () => { const t = rng.pick(teams); return { text: `principal.team == "${t}"`, holds: (p) => p.team === t }; },
    () => ({ text: `principal.mfa and request.ip in 10.0.0.0/8`, holds: (p, r) => p.mfa === true && inV4(r.ip, 0x0a000000n, 8n) }),
    () => ({ text: `request.ip in [10.0.0.0/8, 192.168.0.0/16, cidr("fd00::/8")]`, holds: (_, r) => inV4(r.ip, 0x0a000000n, 8n) || inV4(r.ip, 0xc0a80000n, 16n) || (r.ip.v6 && r.ip.addr >> 120n === 0xfdn) }),
    () => ({ text: `request.header["x-reason"] != ""`, holds: (_, r) => header(r, "x-reason") !== "" }),
    () => ({ text: `request.header has "x-ticket" and principal.mfa`, holds: (p, r) => r.headers["x-ticket"] !== undefined && p.mfa === true }),
    () => { const n = 1 + rng.int(4); return { text: `principal.level >= ${n}`, holds: (p) => (p.level as number) >= n }; },
    () => { const a = rng.pick(teams), b = rng.pick(teams); return { text: `principal.team in ["${a}", "${b}"] or principal.level > 3`, holds: (p) => p.team === a || p.team === b || (p.level as number) > 3 }; },
    () => ({ text: `not (request.header["x-impersonate"] == "1")`, holds: (_, r) => header(r, "x-impersonate") !== "1" }),
    () => (hasId
      ? { text: `request.param.id starts_with "p"`, holds: (_, __, params) => (params.id ?? "").startsWith("p") }
      : { text: `request.query["mode"] == "safe"`, holds: (_, r) => (r.query["mode"] ?? "") === "safe" }),
  ];
  return rng.chance(0.35) ? null : rng.pick(options)();
}

/** The upstream of every generated admin duty: no operational duty forwards to it. */
const ADMIN_UPSTREAM = "svc_admin";

/** The rules of a generated policy as plain data, for an evaluator written by hand. */
export interface GeneratedRules {
  /** Per duty name, its grants in source order. */
  grants: Map<string, Array<{ roles: string[]; when: GeneratedCondition | null; until: number }>>;
  /** Duties with a freeze forbid (`x-freeze: 1`); every duty has the lockdown forbid (`x-lockdown: on`). */
  frozen: Set<string>;
  exclusives: Array<{ roles: string[]; atLeast: number }>;
  /** Per duty name, the separations naming it (keyed by `:id`). */
  separated: Map<string, string[]>;
}

/**
 * Generates a valid policy with `dutyCount` duties (one file): `gateway check` passes it. Deterministic for a seed.
 *
 * @example
 * const gen = generatePolicy(1000);
 * const { policy } = loadPolicy([{ path: gen.path, text: gen.text }]);
 */
export function generatePolicy(dutyCount: number, seed = 1): GeneratedPolicy {
  const rng = createRng(seed);
  const roleCount = Math.min(50, Math.max(10, Math.round(8 + 4 * Math.log10(Math.max(1, dutyCount)) ** 2)));
  const roles = Array.from({ length: roleCount }, (_, i) => `role_${i}`);
  const teams = TEAMS;
  const upstreamCount = Math.min(20, 3 + Math.floor(dutyCount / 50));
  const upstreams = Array.from({ length: upstreamCount }, (_, i) => `svc_${i}`);
  const lines: string[] = [
    "# generated by bench/gen-policy.ts",
    "principal {",
    "  sub: string",
    "  roles: set<role>",
    "  mfa: bool",
    "  team: string",
    "  level: int",
    "}",
    `role ${roles.join(", ")}`,
    `upstream ${upstreams.join(", ")}`,
  ];
  const upstreamLine = lines.length - 1;
  const duties: GeneratedDuty[] = [];
  const separations: string[] = [];
  const rules: GeneratedRules = { grants: new Map(), frozen: new Set(), exclusives: [], separated: new Map() };
  for (let r = 0; duties.length < dutyCount; r++) {
    const service = SERVICES[r % SERVICES.length]!;
    const base = `/${service}/res${r}`;
    const stem = `${service}_res${r}`;
    const channel: Channel = rng.chance(0.05) ? "admin" : "operational";
    const shapes: Array<[string, string, string]> = [
      ["list", "GET", base],
      ["create", "POST", base],
      ["read", "GET", `${base}/:id`],
      ["update", "PUT", `${base}/:id`],
      ["delete", "DELETE", `${base}/:id`],
      ...ACTIONS.map((a): [string, string, string] => [a, "POST", `${base}/:id/${a}`]),
      ["files", "GET", `${base}/:id/files/*`],
    ];
    const made: string[] = [];
    for (const [verb, method, pattern] of shapes) {
      if (duties.length >= dutyCount) break;
      const d: GeneratedDuty = { name: `${stem}_${verb}`, method, pattern, channel };
      duties.push(d);
      made.push(verb);
      // Drawn for every duty, so a seed gives the same policy as before admin duties got their own upstream.
      const upstream = rng.pick(upstreams);
      // An operational duty on an admin duty's upstream is refused (E_ADMIN_REACHABLE_OPERATIONALLY).
      lines.push(`duty ${d.name} ${method} ${pattern} -> ${channel === "admin" ? ADMIN_UPSTREAM : upstream}${channel === "admin" ? " channel admin" : ""}`);
    }
    const acts = ACTIONS.filter((a) => made.includes(a));
    if (acts.length >= 2) {
      separations.push(`separate ${acts.map((a) => `${stem}_${a}`).join(", ")} by id`);
      for (const a of acts) rules.separated.set(`${stem}_${a}`, [...(rules.separated.get(`${stem}_${a}`) ?? []), `sep_${stem}`]);
    }
  }
  if (duties.some((d) => d.channel === "admin")) lines[upstreamLine] += `, ${ADMIN_UPSTREAM}`;
  // Exclusive sets: disjoint pairs over the first roles, then one 2-of-3 set.
  const pairs = Math.max(1, Math.floor(roleCount / 8));
  for (let i = 0; i < pairs; i++) {
    lines.push(`exclusive ${roles[2 * i]}, ${roles[2 * i + 1]}`);
    rules.exclusives.push({ roles: [roles[2 * i]!, roles[2 * i + 1]!], atLeast: 2 });
  }
  lines.push(`exclusive 2 of ${roles[roleCount - 3]}, ${roles[roleCount - 2]}, ${roles[roleCount - 1]}`);
  rules.exclusives.push({ roles: roles.slice(roleCount - 3), atLeast: 2 });
  for (const d of duties) {
    const grants = 1 + rng.int(3);
    for (let g = 0; g < grants; g++) {
      const held = new Set<string>();
      const n = 1 + rng.int(2);
      while (held.size < n) held.add(rng.pick(roles));
      const cond = conditionFor(rng, d, teams);
      const year = rng.chance(0.05) ? 2030 + rng.int(10) : null;
      const until = year !== null ? ` until ${year}-12-31` : "";
      lines.push(`grant ${[...held].join(", ")} ${d.name}${cond ? ` when ${cond.text}` : ""}${until}`);
      const own = rules.grants.get(d.name) ?? [];
      own.push({ roles: [...held], when: cond, until: year !== null ? Date.UTC(year + 1, 0, 1) - 1 : Infinity });
      rules.grants.set(d.name, own);
    }
    if (rng.chance(0.05)) {
      lines.push(`forbid ${d.name} when request.header["x-freeze"] == "1"`);
      rules.frozen.add(d.name);
    }
  }
  lines.push(`forbid * when request.header["x-lockdown"] == "on"`);
  lines.push(...separations);
  return { path: `generated_${dutyCount}.duty`, text: lines.join("\n") + "\n", roles, teams, duties, rules };
}

/** Untyped principal attributes, as mapped claims would give them; type them with `coercePrincipal`. */
export interface RawPrincipal {
  sub: string;
  roles: string[];
  mfa: boolean;
  team: string;
  level: number;
}

/** Principals holding one to three roles (some of them exclusive, as in real exports). */
export function samplePrincipals(gen: GeneratedPolicy, count: number, seed = 2): RawPrincipal[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, (_, i) => {
    const roles = new Set<string>();
    const n = 1 + rng.int(3);
    while (roles.size < n) roles.add(rng.pick(gen.roles));
    return { sub: `user${i}`, roles: [...roles], mfa: rng.chance(0.7), team: rng.pick(gen.teams), level: 1 + rng.int(5) };
  });
}

export interface SampleRequest {
  channel: Channel;
  request: PolicyRequest;
}

const IPS = ["10.1.2.3", "10.200.0.9", "192.168.4.20", "203.0.113.7", "198.51.100.1", "fd00::17", "2001:db8::5"].map((t) => parseIp(t)!);

/** Requests to the policy's duties (a concrete path for each pattern), with a share of unknown routes. */
export function sampleRequests(gen: GeneratedPolicy, count: number, seed = 3): SampleRequest[] {
  const rng = createRng(seed);
  const out: SampleRequest[] = [];
  for (let i = 0; i < count; i++) {
    const d = rng.pick(gen.duties);
    let path = d.pattern
      .split("/")
      .map((seg) => (seg.startsWith(":") ? (rng.chance(0.5) ? `p${rng.int(1000)}` : String(rng.int(100000))) : seg))
      .join("/");
    if (path.endsWith("/*")) path = path.slice(0, -2) + Array.from({ length: rng.int(3) }, () => `/f${rng.int(50)}.txt`).join("");
    let method = d.method;
    if (rng.chance(0.08)) path = `/unknown/${rng.int(100)}`;
    if (rng.chance(0.03)) method = "PATCH";
    const headers: Record<string, string> = { "user-agent": "bench", accept: "application/json" };
    if (rng.chance(0.3)) headers["x-reason"] = "ticket";
    if (rng.chance(0.2)) headers["x-ticket"] = `T-${rng.int(1000)}`;
    if (rng.chance(0.03)) headers["x-freeze"] = "1";
    if (rng.chance(0.01)) headers["x-lockdown"] = "on";
    const query: Record<string, string> = rng.chance(0.2) ? { mode: rng.pick(["safe", "fast"]) } : {};
    out.push({
      channel: d.channel === "admin" && rng.chance(0.9) ? "admin" : "operational",
      request: { method, path, ip: rng.pick(IPS), time: SAMPLE_TIME + (rng.int(60) - 30) * 86_400_000, headers, query },
    });
  }
  return out;
}
