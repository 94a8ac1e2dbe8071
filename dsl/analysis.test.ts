// Static separation-of-duties analysis, table-driven with golden files: the reachability table
// (text and JSON) and the diagnostics it adds, for the shipped policy and for small policies that
// exercise each verdict; then `checkAssignments` over role-assignment exports.
//
// Golden files live in test/golden/sod/. Regenerate them after an intended change with
//   node_modules/.bin/bun scripts/update-golden.ts   (runs this file under UPDATE_GOLDEN=1)
// and review the diff.
import { test, expect, describe } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { analyzeSeparation, checkAssignments, MAX_COMBINATIONS_PER_ROW, MAX_PAIRS_PER_CONSTRAINT, renderReachabilityTable, roleDutyMatrix, type SeparationAnalysis } from "./analysis.ts";
import { loadPolicy, type CheckedDuty, type CheckedPolicy, type PolicySource, type Segment } from "./mod.ts";
import { createRng } from "../bench/gen-policy.ts";

const REPO_ROOT = resolve(import.meta.dir, "..");
const GOLDEN_DIR = join(REPO_ROOT, "test/golden/sod");
const UPDATE = process.env.UPDATE_GOLDEN === "1";
const NOW = Date.UTC(2026, 0, 1);

/** Compares `actual` with the golden file, or rewrites it under UPDATE_GOLDEN=1. */
function expectGolden(name: string, actual: string): void {
  const file = join(GOLDEN_DIR, name);
  if (UPDATE) {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) throw new Error(`golden file \`${file}\` is missing; run with UPDATE_GOLDEN=1 to create it`);
  expect(actual).toBe(readFileSync(file, "utf8"));
}

function shippedSources(): PolicySource[] {
  const dir = join(REPO_ROOT, "policies");
  return readdirSync(dir).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: `policies/${f}`, text: readFileSync(join(dir, f), "utf8") }));
}

function load(sources: PolicySource[]): CheckedPolicy {
  const r = loadPolicy(sources, { now: NOW });
  const errors = r.diagnostics.filter((d) => d.severity === "error");
  if (!r.policy) throw new Error(`policy did not load: ${errors.map((d) => `${d.code} ${d.message}`).join("; ")}`);
  return r.policy;
}

/** Four lines of declarations every small case starts with; its own lines begin at line 5. */
const HEAD = `principal { sub: string roles: set<role> mfa: bool }
role maker, checker, shipper, ops, a, b, c, d
upstream app, admin, gateway
# case
`;

function renderGoldenText(analysis: SeparationAnalysis): string {
  const lines = [
    ...renderReachabilityTable(analysis.rows),
    "",
    "diagnostics:",
    ...(analysis.diagnostics.length ? analysis.diagnostics.map((d) => `  ${d.span.file}:${d.span.line}:${d.span.col}: ${d.severity}[${d.code}]: ${d.message}`) : ["  (none)"]),
  ];
  return lines.map((l) => l.trimEnd()).join("\n") + "\n";
}

function renderGoldenJson(analysis: SeparationAnalysis): string {
  return JSON.stringify({
    rows: analysis.rows,
    diagnostics: analysis.diagnostics.map((d) => ({ code: d.code, severity: d.severity, at: `${d.span.file}:${d.span.line}:${d.span.col}`, message: d.message, help: d.help })),
  }, null, 2) + "\n";
}

interface AnalysisCase {
  name: string;
  sources: () => PolicySource[];
  /** `kind constraint sides verdict` per row, in order. */
  rows: string[];
  /** `CODE line:col` per diagnostic, in order. */
  diagnostics: string[];
  /** Extra facts of one row: index → single roles / combinations. */
  detail?: Record<number, { singleRoles?: string[]; combinations?: string[] }>;
}

const cases: AnalysisCase[] = [
  {
    name: "shipped",
    sources: shippedSources,
    rows: [
      "separate submit_change/approve_change ok",
      "separate submit_change/deploy_change ok",
      "separate approve_change/deploy_change ok",
      "exclusive developer/deployer ok",
      "exclusive reviewer/security_admin ok",
    ],
    diagnostics: [],
    // developer+deployer is exclusive, so it is no combination for submit/deploy; sre is.
    detail: { 0: { singleRoles: [], combinations: ["developer+reviewer"] }, 1: { singleRoles: [], combinations: ["developer+sre"] }, 2: { combinations: ["reviewer+deployer", "reviewer+sre"] } },
  },
  {
    name: "same-role-both-sides",
    sources: () => [{ path: "p.duty", text: HEAD + "duty submit POST /c/:c/submit -> app\nduty approve POST /c/:c/approve -> app\ngrant maker, ops submit\ngrant checker, ops approve\nseparate submit, approve by c\n" }],
    rows: ["separate submit/approve warning"],
    diagnostics: ["W_SEPARATE_SAME_ROLE 9:1"],
    detail: { 0: { singleRoles: ["ops"], combinations: ["maker+checker", "maker+ops", "ops+checker"] } },
  },
  {
    name: "admin-upstream-forwarded",
    sources: () => [{ path: "p.duty", text: HEAD + "duty set_config PUT /admin/config -> admin channel admin\nduty peek GET /peek -> admin\ngrant ops set_config\ngrant maker peek\n" }],
    rows: ["channel peek/set_config error"],
    diagnostics: ["E_ADMIN_REACHABLE_OPERATIONALLY 6:1"],
    detail: { 0: { singleRoles: ["maker"] } },
  },
  {
    name: "admin-route-overlap",
    sources: () => [{ path: "p.duty", text: HEAD + "duty read_security GET /admin/security/* -> admin channel admin\nduty section GET /admin/:section/view -> app\nduty other GET /admin/other -> app\ngrant ops read_security\ngrant maker section\ngrant maker other\n" }],
    rows: ["channel section/read_security error"],
    diagnostics: ["E_ADMIN_REACHABLE_OPERATIONALLY 6:1"],
  },
  {
    name: "admin-separate-ok",
    sources: () => [{ path: "p.duty", text: HEAD + "duty set_config PUT /admin/config -> admin channel admin\nduty get_config GET /admin/config -> app\nduty put_app PUT /app/config -> app\ngrant ops set_config\ngrant maker get_config\ngrant maker put_app\n" }],
    // Same path, other method; another path, same method: neither reaches the admin duty.
    rows: [],
    diagnostics: [],
  },
  {
    name: "exclusive-2-of-3",
    sources: () => [{ path: "p.duty", text: HEAD + "duty x POST /c/:c/x -> app\nduty y POST /c/:c/y -> app\nduty z POST /c/:c/z -> app\ngrant a x\ngrant b y\ngrant c, a z\nexclusive 2 of a, b, c\nseparate x, y, z by c\n" }],
    rows: [
      "separate x/y ok",
      "separate x/z warning",
      "separate y/z ok",
      "exclusive a/b ok",
      "exclusive a/c ok",
      "exclusive b/c ok",
    ],
    diagnostics: ["W_SEPARATE_SAME_ROLE 12:1"],
    // No combination crosses a 2-of-3 set: any two of a, b, c are never held together.
    detail: { 0: { singleRoles: [], combinations: [] }, 1: { singleRoles: ["a"], combinations: [] }, 2: { combinations: [] } },
  },
  {
    name: "exclusive-3-of-4",
    sources: () => [{ path: "p.duty", text: HEAD + "duty x POST /c/:c/x -> app\nduty y POST /c/:c/y -> app\ngrant a x\ngrant b y\nexclusive 3 of a, b, c, d\nseparate x, y by c\n" }],
    // Two of a 3-of set may be held together: a+b stays a combination the ledger must separate.
    rows: [
      "separate x/y ok",
      "exclusive a/b ok", "exclusive a/c ok", "exclusive a/d ok", "exclusive b/c ok", "exclusive b/d ok", "exclusive c/d ok",
    ],
    diagnostics: [],
    detail: { 0: { combinations: ["a+b"] } },
  },
  {
    name: "exclusive-2-of-30-summarised",
    sources: () => [{ path: "p.duty", text: `principal { sub: string roles: set<role> }\nrole ${Array.from({ length: 30 }, (_, i) => `r${i}`).join(", ")}\nupstream app\n# case\nduty x GET /x -> app\ngrant r0 x\nexclusive 2 of ${Array.from({ length: 30 }, (_, i) => `r${i}`).join(", ")}\n` }],
    // 435 pairs: the first 20 are listed, one row stands for the other 415.
    rows: [...Array.from({ length: 20 }, (_, j) => `exclusive r0/r${j + 1} ok`), "exclusive …/… ok"],
    diagnostics: [],
  },
];

describe("analyzeSeparation", () => {
  test.each(cases)("$name: reachability table and diagnostics", (c) => {
    const analysis = analyzeSeparation(load(c.sources()));
    const short = (r: (typeof analysis.rows)[number]) => `${r.kind} ${r.sides.join("/")} ${r.verdict}`;
    expect(analysis.rows.map(short)).toEqual(c.rows);
    expect(analysis.diagnostics.map((d) => `${d.code} ${d.span.line}:${d.span.col}`)).toEqual(c.diagnostics);
    for (const [i, want] of Object.entries(c.detail ?? {})) {
      const row = analysis.rows[Number(i)]!;
      if (want.singleRoles) expect(row.singleRoles).toEqual(want.singleRoles);
      if (want.combinations) expect(row.combinations.map(([x, y]) => `${x}+${y}`)).toEqual(want.combinations);
    }
    expectGolden(`${c.name}.txt`, renderGoldenText(analysis));
    expectGolden(`${c.name}.json`, renderGoldenJson(analysis));
  });

  test("W_SEPARATE_SAME_ROLE names the role and both duties, with help", () => {
    const d = analyzeSeparation(load(cases[1]!.sources())).diagnostics[0]!;
    expect(d.severity).toBe("warning");
    expect(d.message).toBe("role `ops` can perform both `submit` and `approve`, which this constraint keeps apart");
    expect(d.help).toContain("exclusive");
  });

  test("E_ADMIN_REACHABLE_OPERATIONALLY is an error pointing at the operational duty", () => {
    const d = analyzeSeparation(load(cases[2]!.sources())).diagnostics[0]!;
    expect(d.severity).toBe("error");
    expect(d.message).toBe("operational duty `peek` forwards to `admin`, the upstream of admin duty `set_config`");
    expect(d.help).toContain("channel admin");
  });

  test("several roles reaching both sides are all listed, plural message", () => {
    const policy = load([{ path: "p.duty", text: HEAD + "duty s POST /c/:c/s -> app\nduty t POST /c/:c/t -> app\ngrant ops, maker s\ngrant maker, ops t\nseparate s, t by c\n" }]);
    const a = analyzeSeparation(policy);
    expect(a.rows[0]!.singleRoles).toEqual(["maker", "ops"]);
    expect(a.diagnostics[0]!.message).toStartWith("roles `maker`, `ops` can perform both");
  });

  test("conditions count as may-hold: a grant behind `when` still reaches", () => {
    const policy = load([{ path: "p.duty", text: HEAD + "duty s POST /c/:c/s -> app\nduty t POST /c/:c/t -> app\ngrant ops s when principal.mfa\ngrant ops t when not principal.mfa\nseparate s, t by c\n" }]);
    expect(analyzeSeparation(policy).rows[0]!.verdict).toBe("warning");
  });
});

describe("the reachability table is bounded (regression: `exclusive 2 of` over 1,500 roles threw RangeError)", () => {
  const roles = (n: number, prefix = "r") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

  test("exclusive 2 of 1,500 roles: 20 pairs and one summary row, and the table renders", () => {
    const names = roles(1500);
    const policy = load([{ path: "p.duty", text: `principal { sub: string roles: set<role> }\nrole ${names.join(", ")}\nupstream app\nduty x GET /x -> app\ngrant ${names.join(", ")} x\nexclusive 2 of ${names.join(", ")}\n` }]);
    const a = analyzeSeparation(policy);
    expect(a.rows.length).toBe(MAX_PAIRS_PER_CONSTRAINT + 1);
    const summary = a.rows.at(-1)!;
    expect(summary.omittedPairs).toBe((1500 * 1499) / 2 - MAX_PAIRS_PER_CONSTRAINT);
    expect(summary.note).toBe("1,124,230 more pairs of 1,500 roles not listed");
    const table = renderReachabilityTable(a.rows);
    expect(table.length).toBe(2 + a.rows.length);
    expect(JSON.stringify(a.rows).length).toBeLessThan(20_000);
  });

  test("separate over 200 duties granted to one role: bounded rows, the omitted warnings counted in one diagnostic", () => {
    const duties = roles(200, "d");
    const text = `principal { sub: string roles: set<role> }\nrole ops, ${roles(30, "x").join(", ")}\nupstream app\n${duties.map((d) => `duty ${d} POST /c/:c/${d} -> app\ngrant ops, ${roles(30, "x").join(", ")} ${d}\n`).join("")}separate ${duties.join(", ")} by c\n`;
    const a = analyzeSeparation(load([{ path: "p.duty", text }]));
    expect(a.rows.length).toBe(MAX_PAIRS_PER_CONSTRAINT + 1);
    expect(a.rows[0]!.combinations.length).toBe(MAX_COMBINATIONS_PER_ROW);
    expect(a.rows[0]!.omittedCombinations).toBe(31 * 31 - 31 - MAX_COMBINATIONS_PER_ROW);
    expect(a.rows.at(-1)!.omittedPairs).toBe((200 * 199) / 2 - MAX_PAIRS_PER_CONSTRAINT);
    expect(a.rows.at(-1)!.verdict).toBe("warning");
    expect(a.diagnostics.length).toBe(MAX_PAIRS_PER_CONSTRAINT + 1);
    expect(a.diagnostics.at(-1)!.message).toBe("19,880 more pairs of duties that this constraint keeps apart can each be performed by one role");
    expect(renderReachabilityTable(a.rows)[2]).toContain(`… ${31 * 31 - 31 - MAX_COMBINATIONS_PER_ROW} more`);
  });
});

describe("checkAssignments", () => {
  const shipped = load(shippedSources());
  const rows: Array<{ name: string; people: Array<{ sub: string; roles: string[] }>; expect: string[] }> = [
    { name: "nobody breaks anything", people: [{ sub: "alice", roles: ["developer"] }, { sub: "bob", roles: ["reviewer", "sre"] }], expect: [] },
    { name: "developer + deployer", people: [{ sub: "mallory", roles: ["developer", "deployer"] }], expect: ["mallory exclusive:policies/base.duty:15:1 developer,deployer -"] },
    { name: "two sets broken by one person", people: [{ sub: "eve", roles: ["developer", "deployer", "reviewer", "security_admin"] }], expect: ["eve exclusive:policies/base.duty:15:1 developer,deployer -", "eve exclusive:policies/base.duty:16:1 reviewer,security_admin -"] },
    { name: "unknown role alone", people: [{ sub: "zed", roles: ["janitor", "developer"] }], expect: ["zed (none) - janitor"] },
    { name: "unknown role with a violation rides on it", people: [{ sub: "max", roles: ["developer", "deployer", "janitor"] }], expect: ["max exclusive:policies/base.duty:15:1 developer,deployer janitor"] },
    { name: "no roles", people: [{ sub: "nobody", roles: [] }], expect: [] },
  ];
  test.each(rows)("$name", (r) => {
    const got = checkAssignments(shipped, r.people).map((v) => `${v.sub} ${v.constraint || "(none)"} ${v.held.join(",") || "-"} ${v.unknownRoles.join(",") || "-"}`);
    expect(got).toEqual(r.expect);
  });

  test("exclusive 2 of a, b, c: any two break it, one does not", () => {
    const policy = load(cases.find((c) => c.name === "exclusive-2-of-3")!.sources());
    const people = [
      { sub: "p1", roles: ["a"] }, { sub: "p2", roles: ["a", "c"] }, { sub: "p3", roles: ["b", "c"] }, { sub: "p4", roles: ["a", "b", "c"] }, { sub: "p5", roles: ["a", "d"] },
    ];
    expect(checkAssignments(policy, people).map((v) => `${v.sub}:${v.held.join("+")}`)).toEqual(["p2:a+c", "p3:b+c", "p4:a+b+c"]);
  });

  test("exclusive 3 of a, b, c, d: two are fine, three are not", () => {
    const policy = load(cases.find((c) => c.name === "exclusive-3-of-4")!.sources());
    const people = [{ sub: "p1", roles: ["a", "b"] }, { sub: "p2", roles: ["a", "b", "d"] }];
    expect(checkAssignments(policy, people).map((v) => `${v.sub}:${v.held.join("+")}`)).toEqual(["p2:a+b+d"]);
  });
});

describe("roleDutyMatrix", () => {
  test("the shipped policy: each cell lists its grants with condition and end date, forbids per duty", () => {
    const files = readdirSync(join(REPO_ROOT, "policies")).filter((f) => f.endsWith(".duty")).sort().map((f) => ({ path: f, text: readFileSync(join(REPO_ROOT, "policies", f), "utf8") }));
    const { policy } = loadPolicy(files, { now: NOW });
    const m = roleDutyMatrix(policy!);
    expect(m.roles).toEqual(policy!.roles);
    expect(m.duties.find((d) => d.name === "deploy_change")).toMatchObject({ route: "POST /changes/:change/deploy", upstream: "deploy", channel: "operational" });
    expect(m.cells.developer!.submit_change).toEqual([{ rule: "grant:changes.duty:10:1", when: null, until: null }]);
    expect(m.cells.developer!.approve_change).toBeUndefined();
    const sre = m.cells.sre!.deploy_change!;
    expect(sre.map((g) => [g.rule, g.until])).toEqual([["grant:changes.duty:14:1", "2027-12-31"]]);
    const changes = files.find((f) => f.path === "changes.duty")!.text;
    expect(changes.slice(sre[0]!.when!.start, sre[0]!.when!.end)).toBe("principal.mfa");
    expect(m.forbids.deploy_change).toEqual(["forbid:changes.duty:17:1"]);
    expect(m.forbids.submit_change).toEqual([]);
  });

  test("`forbid *` applies to every duty, and a role with no grant keeps an empty row", () => {
    const { policy } = loadPolicy([{ path: "m.duty", text: "principal { sub: string\n roles: set<role> }\nrole a, idle\nupstream u\nduty x GET /x -> u\nduty y GET /y -> u\ngrant a x\nforbid * when request.header[\"k\"] == \"1\"\n" }]);
    const m = roleDutyMatrix(policy!);
    expect(m.cells.idle).toEqual({});
    expect(Object.keys(m.cells.a!)).toEqual(["x"]);
    expect(m.forbids).toEqual({ x: ["forbid:m.duty:8:1"], y: ["forbid:m.duty:8:1"] });
  });
});

describe("admin exposure by route: the index finds what a scan of every admin duty finds", () => {
  // The analysis looks admin duties up by method and first segment instead of comparing every
  // operational duty with every admin duty. Reference: the plain scan, first admin duty in order.
  const overlap = (a: readonly Segment[], b: readonly Segment[]): boolean => {
    for (let i = 0; ; i++) {
      const x = a[i], y = b[i];
      if (x?.kind === "wildcard" || y?.kind === "wildcard") return true;
      if (!x || !y) return !x && !y;
      if (x.kind === "literal" && y.kind === "literal" && x.text !== y.text) return false;
    }
  };
  test("on 40 random route sets (literals, params, wildcards, several methods, the root route)", () => {
    const rng = createRng(11);
    let clashes = 0;
    const segment = (): Segment => (rng.chance(0.15) ? { kind: "param", name: "p" } : rng.chance(0.05) ? { kind: "wildcard" } : { kind: "literal", text: rng.pick(["a", "b", "c"]) });
    for (let round = 0; round < 40; round++) {
      const duties = Array.from({ length: 60 }, (_, i): CheckedDuty => {
        const segments = Array.from({ length: rng.int(4) }, segment);
        const methods = rng.chance(0.2) ? ["GET", "HEAD"] : [rng.pick(["GET", "POST", "PUT"])];
        // Each duty its own upstream: only routes can expose an admin duty here.
        return { name: `d${i}`, method: methods.join("|"), methods, pattern: "/", segments, upstream: `u${i}`, channel: rng.chance(0.3) ? "admin" : "operational" } as unknown as CheckedDuty;
      });
      const policy = { duties, grants: [], forbids: [], exclusives: [], separations: [] } as unknown as CheckedPolicy;
      const admin = duties.filter((d) => d.channel === "admin");
      const expected = duties.filter((d) => d.channel === "operational").flatMap((o) => {
        const clash = admin.find((a) => a.methods.some((m) => o.methods.includes(m)) && overlap(a.segments, o.segments));
        return clash ? [[o.name, clash.name]] : [];
      });
      const found = analyzeSeparation(policy).rows.filter((r) => r.kind === "channel").map((r) => [...r.sides]);
      expect(found).toEqual(expected);
      clashes += expected.length;
    }
    // The rounds must find exposures, or they compare two empty lists.
    expect(clashes).toBeGreaterThan(100);
  });
});
