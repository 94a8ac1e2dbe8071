// Hot reload end to end: with `policy.watch = true` each way a policy file really changes on
// disk — in-place edit, atomic rename, truncating editor, Kubernetes `..data` symlink swap — makes
// the new policy active; `gw.reload()` (what SIGHUP does) too. Then reload under load: eight
// clients keep calling while the policy flips between two versions twenty times; no request fails,
// and each response matches the policy its audit record names (by bundle digest).
// Nothing here asserts a duration: changes are awaited by polling with a deadline.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GatewayConfig } from "../../src/config/types.ts";
import { startTestGateway, type TestGateway } from "../support/harness.ts";
import { readWholeRecords } from "../support/audit-log.ts";
import { waitFor } from "../support/wait-for.ts";

const HEAD = `principal {
  sub: string
  roles: set<role>
  mfa: bool
  team: string
}
role developer, reviewer, deployer, auditor, sre, security_admin
upstream changes, deploy, logs, admin
duty ping GET /ping -> changes
`;
/** Two valid policies that decide `GET /ping` by a developer differently. */
const POLICY = {
  A: HEAD + "# version A: developers may ping\ngrant developer ping\n",
  B: HEAD + "# version B: only auditors may ping\ngrant auditor ping\n",
} as const;
type Version = keyof typeof POLICY;
const EXPECTED_STATUS: Record<Version, number> = { A: 200, B: 403 };

const work = mkdtempSync(join(tmpdir(), "dutygate-reload-e2e-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let stagingSeq = 0;
function stagePolicy(version: Version): string {
  const dir = join(work, `staging-${++stagingSeq}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "policy.duty"), POLICY[version]);
  return dir;
}

const watching = (c: GatewayConfig): GatewayConfig => ({ ...c, policy: { ...c.policy, watch: true, debounceMs: 50 } });

async function pingAsDeveloper(t: TestGateway): Promise<number> {
  const token = await t.issuer.token({ sub: "dana", roles: ["developer"] });
  const res = await t.fetch("/ping", { token });
  await res.arrayBuffer();
  return res.status;
}

/** Waits until the gateway decides as `version` does. */
async function expectActive(t: TestGateway, version: Version): Promise<void> {
  await waitFor(`policy ${version} to decide`, async () => (await pingAsDeveloper(t)) === EXPECTED_STATUS[version]);
  expect(await pingAsDeveloper(t)).toBe(EXPECTED_STATUS[version]);
}

function editInPlace(file: string, text: string): void {
  // Overwrite from the start, then cut the tail: the file is never empty (unlike O_TRUNC).
  const fd = openSync(file, "r+");
  try {
    const bytes = Buffer.from(text);
    writeSync(fd, bytes, 0, bytes.length, 0);
    ftruncateSync(fd, bytes.length);
  } finally {
    closeSync(fd);
  }
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

describe("file watch", () => {
  let t: TestGateway;
  let file: string;
  beforeAll(async () => {
    t = await startTestGateway({ policyDir: stagePolicy("A"), configure: watching });
    file = join(t.config.policy.dir, "policy.duty");
  });
  afterAll(async () => {
    await t?.stop();
  });

  test("an in-place edit makes the new policy active", async () => {
    await expectActive(t, "A");
    const before = t.gw.policy.active!.digest;
    editInPlace(file, POLICY.B);
    await expectActive(t, "B");
    expect(t.gw.policy.active!.digest).not.toBe(before);
  });

  test("an atomic save (temp file renamed over) makes the new policy active", async () => {
    writeAtomically(file, POLICY.A);
    await expectActive(t, "A");
    expect(readdirSync(t.config.policy.dir)).toEqual(["policy.duty"]);
  });

  test("a truncating editor: the empty file is refused and the old policy serves, then the content goes live", async () => {
    await expectActive(t, "A");
    const failedBefore = t.gw.policy.reloads.failed;
    writeFileSync(file, "");
    await waitFor("the empty file to be refused", () => t.gw.policy.reloads.failed > failedBefore);
    expect(t.gw.policy.lastError?.code).toBe("POLICY_INVALID");
    // While the file is empty the last good policy (A) still decides.
    expect(await pingAsDeveloper(t)).toBe(200);
    writeFileSync(file, POLICY.B);
    await expectActive(t, "B");
    await waitFor("the error to clear", () => t.gw.policy.lastError === null);
  });

  test("SIGHUP-equivalent gw.reload() picks up a change at once", async () => {
    // The watcher may get there first; either way, after reload() resolves the change is live.
    writeAtomically(file, POLICY.A);
    await t.gw.reload("sighup");
    expect(await pingAsDeveloper(t)).toBe(200);
    expect(t.gw.policy.lastError).toBeNull();
  });
});

describe("SIGHUP without a watch", () => {
  test("gw.reload() is the only trigger and makes the edit active", async () => {
    const t = await startTestGateway({ policyDir: stagePolicy("A") });
    try {
      expect(t.config.policy.watch).toBe(false);
      expect(await pingAsDeveloper(t)).toBe(200);
      const reloadsBefore = t.gw.policy.reloads.ok;
      writeFileSync(join(t.config.policy.dir, "policy.duty"), POLICY.B);
      await t.gw.reload("sighup");
      expect(t.gw.policy.reloads.ok).toBe(reloadsBefore + 1);
      expect(await pingAsDeveloper(t)).toBe(403);
    } finally {
      await t.stop();
    }
  });
});

describe("Kubernetes ConfigMap volume", () => {
  // The kubelet's layout: DIR/..<timestamp>/files, DIR/..data -> ..<timestamp>, DIR/x -> ..data/x.
  // An update writes a new timestamped directory, points `..data_tmp` at it and renames it over `..data`.
  let t: TestGateway;
  let configMapDir = "";
  const makeGeneration = (name: string, version: Version) => {
    mkdirSync(join(configMapDir, name));
    writeFileSync(join(configMapDir, name, "policy.duty"), POLICY[version]);
  };
  beforeAll(async () => {
    t = await startTestGateway({
      policyDir: stagePolicy("A"),
      configure: (c, { dir }) => {
        configMapDir = join(dir, "configmap");
        mkdirSync(configMapDir);
        makeGeneration("..2026_11_22_06_00_00.0001", "A");
        symlinkSync("..2026_11_22_06_00_00.0001", join(configMapDir, "..data"));
        symlinkSync("..data/policy.duty", join(configMapDir, "policy.duty"));
        return watching({ ...c, policy: { ...c.policy, dir: configMapDir } });
      },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  test("the `..data` symlink swap makes the new policy active", async () => {
    await expectActive(t, "A");
    makeGeneration("..2026_11_22_06_05_00.0002", "B");
    symlinkSync("..2026_11_22_06_05_00.0002", join(configMapDir, "..data_tmp"));
    renameSync(join(configMapDir, "..data_tmp"), join(configMapDir, "..data"));
    rmSync(join(configMapDir, "..2026_11_22_06_00_00.0001"), { recursive: true });
    await expectActive(t, "B");
    // Only the visible file is policy: the timestamped directories are not read twice.
    expect(t.gw.policy.active!.files).toEqual(["policy.duty"]);
  });

  test("a second swap back works too (the watch re-armed on the new target)", async () => {
    makeGeneration("..2026_11_22_06_10_00.0003", "A");
    symlinkSync("..2026_11_22_06_10_00.0003", join(configMapDir, "..data_tmp"));
    renameSync(join(configMapDir, "..data_tmp"), join(configMapDir, "..data"));
    rmSync(join(configMapDir, "..2026_11_22_06_05_00.0002"), { recursive: true });
    await expectActive(t, "A");
  });
});

describe("symlinked policy directory switched with rename (the documented way to publish)", () => {
  // DIR/current -> v1; publishing is `ln -s v2 tmp && mv -T tmp current`: one rename(2) of a link
  // in DIR, and no event at all under the directories the link points to.
  let t: TestGateway;
  let publishDir = "";
  let activeDigest = "";
  const digestOf = new Map<string, string>();
  const publish = (version: string): void => {
    const run = Bun.spawnSync(["sh", "-c", `ln -s ${version} tmp && mv -T tmp current`], { cwd: publishDir, stdout: "pipe", stderr: "pipe", timeout: 10_000 });
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
  };
  /** Waits for another bundle to be active, then checks it is `version`'s (by digest, so a swap back is told apart) and decides as `as` does. */
  const expectPublished = async (version: string, as: Version): Promise<void> => {
    await waitFor(`${version} to become active`, () => t.gw.policy.active!.digest !== activeDigest);
    activeDigest = t.gw.policy.active!.digest;
    if (digestOf.has(version)) expect(activeDigest).toBe(digestOf.get(version)!);
    digestOf.set(version, activeDigest);
    expect(await pingAsDeveloper(t)).toBe(EXPECTED_STATUS[as]);
    expect(t.gw.policy.lastError).toBeNull();
  };
  beforeAll(async () => {
    t = await startTestGateway({
      policyDir: stagePolicy("A"),
      configure: (c, { dir }) => {
        publishDir = join(dir, "published");
        const versions: Array<[string, string]> = [["v1", POLICY.A], ["v2", POLICY.B], ["v3", POLICY.A + "# v3\n"]];
        for (const [version, text] of versions) {
          mkdirSync(join(publishDir, version), { recursive: true });
          writeFileSync(join(publishDir, version, "policy.duty"), text);
        }
        symlinkSync("v1", join(publishDir, "current"));
        return watching({ ...c, policy: { ...c.policy, dir: join(publishDir, "current") } });
      },
    });
    activeDigest = t.gw.policy.active!.digest;
    digestOf.set("v1", activeDigest);
  });
  afterAll(async () => {
    await t?.stop();
  });

  test("v2, then v3, then back to v2: each goes live without SIGHUP", async () => {
    expect(await pingAsDeveloper(t)).toBe(200);
    publish("v2");
    await expectPublished("v2", "B");
    publish("v3");
    await expectPublished("v3", "A");
    expect(digestOf.get("v3")).not.toBe(digestOf.get("v1"));
    publish("v2");
    await expectPublished("v2", "B");
  }, 60_000);

  test("after the swap back the watch follows the new target: an edit inside it goes live", async () => {
    writeAtomically(join(publishDir, "v2", "policy.duty"), POLICY.A + "# v2, edited in place\n");
    await expectPublished("v2 edited", "A");
  }, 60_000);
});

describe("reload under load", () => {
  const CLIENTS = 8;
  const MIN_REQUESTS = 2000;
  const SWAPS = 20;

  test(`${CLIENTS} clients, >= ${MIN_REQUESTS} requests, ${SWAPS} swaps: no failed request, every answer matches the policy its audit record names`, async () => {
    const t = await startTestGateway({ policyDir: stagePolicy("A"), configure: watching });
    try {
      const file = join(t.config.policy.dir, "policy.duty");
      const digestOf: Partial<Record<Version, string>> = { A: t.gw.policy.active!.digest };
      const token = await t.issuer.token({ sub: "dana", roles: ["developer"], ttlSeconds: 600 });
      const responses: Array<{ requestId: string | null; status: number }> = [];
      const failures: string[] = [];
      let swapsDone = false;
      const deadline = Date.now() + 120_000;

      const client = async () => {
        while ((responses.length + failures.length < MIN_REQUESTS || !swapsDone) && Date.now() < deadline) {
          try {
            const res = await t.fetch("/ping", { token });
            await res.arrayBuffer();
            responses.push({ requestId: res.headers.get("x-request-id"), status: res.status });
          } catch (e) {
            failures.push(`connection: ${(e as Error).message}`);
          }
        }
      };
      const swapper = async () => {
        try {
          for (let i = 1; i <= SWAPS; i++) {
            const next: Version = i % 2 === 1 ? "B" : "A";
            const previous = t.gw.policy.active!.digest;
            writeAtomically(file, POLICY[next]);
            await waitFor(`swap ${i} to ${next}`, () => t.gw.policy.active!.digest !== previous);
            digestOf[next] ??= t.gw.policy.active!.digest;
            expect(t.gw.policy.active!.digest).toBe(digestOf[next]!);
            // Let some traffic through under this version before the next swap.
            const seen = responses.length;
            await waitFor("traffic between swaps", () => responses.length >= seen + 20);
          }
        } finally {
          swapsDone = true;
        }
      };
      await Promise.all([swapper(), ...Array.from({ length: CLIENTS }, client)]);

      expect(failures).toEqual([]);
      expect(responses.length).toBeGreaterThanOrEqual(MIN_REQUESTS);
      expect(responses.filter((r) => r.status !== 200 && r.status !== 403).map((r) => r.status)).toEqual([]);
      expect(t.gw.policy.reloads.failed).toBe(0);

      // Match each response to its decision record by request id.
      const versionOfDigest = new Map<string, Version>([[digestOf.A!, "A"], [digestOf.B!, "B"]]);
      const records = new Map<string, Record<string, unknown>>();
      for (const r of readWholeRecords(t.config.audit.dir)) {
        if (r.type === "decision" && typeof r.request_id === "string") records.set(r.request_id, r);
      }
      const mismatches: string[] = [];
      const perVersion: Record<Version, number> = { A: 0, B: 0 };
      for (const r of responses) {
        const record = r.requestId ? records.get(r.requestId) : undefined;
        if (!record) { mismatches.push(`${r.requestId}: no decision record`); continue; }
        const version = versionOfDigest.get((record.bundle as { digest: string }).digest);
        if (!version) { mismatches.push(`${r.requestId}: unknown digest`); continue; }
        perVersion[version]++;
        if (EXPECTED_STATUS[version] !== r.status) mismatches.push(`${r.requestId}: policy ${version} but status ${r.status}`);
        if ((record.decision === "allow") !== (r.status === 200)) mismatches.push(`${r.requestId}: record says ${String(record.decision)}, status ${r.status}`);
      }
      expect(mismatches).toEqual([]);
      // Both versions really served traffic.
      expect(perVersion.A).toBeGreaterThan(0);
      expect(perVersion.B).toBeGreaterThan(0);
      expect(perVersion.A + perVersion.B).toBe(responses.length);
    } finally {
      await t.stop();
    }
  }, 180_000);
});
