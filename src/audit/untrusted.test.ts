// Every response has an audit record, whatever a caller sends: strings the gateway did not
// write (a token's unverified header and claims, headers, paths, query names) reach record
// fields, and the log must write and chain them whatever code units they hold.
import { afterAll, describe, expect, test } from "bun:test";
import { replaceLoneSurrogates } from "../lib/mod.ts";
import { openAuditLog } from "./log.ts";
import { outcomesOf } from "./outcomes.ts";
import { auditFiles, logOptions, makeSigner, readLinesOf } from "../../test/support/audit-log.ts";
import { tempDir, removeTempDir } from "../../test/support/temp-dir.ts";
import { verifyAuditFiles } from "./verify.ts";

// A small deterministic generator (xorshift32): the same cases on every run, on every runtime.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

// Pieces an attacker can put in a string: lone halves of a surrogate pair, whole pairs (which
// a cut at a fixed length splits), escapes, controls, separators JSON and JavaScript treat apart.
const PIECES = [
  "\ud800", "\udbff", "\udc00", "\udfff", "😀", "𝄞", "\ufffd", "\u2028", "\u2029", "\u0000", "\u001f", "\u007f",
  "\"", "\\", "\\ud800", "/", "\n", "\r", "\t", "a", "é", "€", "iss", "alg", " ", "{", "}", ",", ":",
];

function untrustedString(next: () => number): string {
  let out = "";
  for (let n = Math.floor(next() * 12); n > 0; n--) out += PIECES[Math.floor(next() * PIECES.length)]!;
  // As an error message shows a value: cut at a fixed length, possibly inside a pair.
  return next() < 0.2 ? out.slice(0, Math.floor(next() * out.length)) : out;
}

function untrustedObject(next: () => number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let n = Math.floor(next() * 4); n > 0; n--) out[untrustedString(next)] = untrustedString(next);
  return out;
}

/** A record shaped as the gateway writes them, with an untrusted string in every field that takes one. */
function untrustedRecord(next: () => number, i: number): Record<string, unknown> {
  const s = () => untrustedString(next);
  switch (i % 3) {
    case 0: // a refusal before a principal exists (authn failure, bad path, bad host)
      return {
        bundle: { digest: s(), revision: 1 }, channel: s(), client_ip: s(), code: s(), decision: "deny", detail: s(), duty: null,
        headers: untrustedObject(next), method: s(), path: s(), request_id: s(), sub: null, type: "decision",
      };
    case 1: // a decision on an authenticated request
      return {
        auth: s(), branch: [s(), s()], bundle: { digest: s(), revision: 2 }, channel: s(), client_ip: s(), code: s(), decided_by: s(),
        decision: "allow", duty: s(), headers: untrustedObject(next), issuer: s(), method: s(), path: s(),
        policy_headers: untrustedObject(next), policy_query: untrustedObject(next),
        principal: { ...untrustedObject(next), roles: [s()], sub: s() }, reasons: [{ held: true, rule: s() }],
        request_id: s(), request_time: s(), roles: [s(), s()], sod: [{ duty: s(), key: s(), sub: s() }], sub: s(), type: "decision", upstream: s(),
      };
    default: // its outcome
      return { code: s(), decision_seq: i - 1, latency_ms: 1.5, ledger: s(), request_id: s(), status: 200, type: "outcome" };
  }
}

const root = tempDir();
afterAll(() => removeTempDir(root));

describe("untrusted strings in every record field", () => {
  test("1500 generated records are all written, read back as sent (lone surrogates as U+FFFD) and verify", async () => {
    const signer = await makeSigner();
    const log = await openAuditLog(logOptions(root, signer.signingKey, { checkpointEvery: 100 }));
    const next = rng(0x5eed_18);
    const events = Array.from({ length: 1500 }, (_, i) => untrustedRecord(next, i));
    const loneSurrogates = events.filter((e) => JSON.stringify(e) !== JSON.stringify(replaceLoneSurrogates(e))).length;
    // Half in concurrent waves (group-committed), half one by one; each wave's outcomes after its
    // decisions, naming the seqs they were given (they go into the batch's `outcomes` record).
    const results: Array<{ seq: number }> = [];
    const seqOf = new Map<number, number>();
    for (let i = 0; i < events.length; i += 51) {
      const wave = events.slice(i, i + 51).map((e, j) => ({ e, at: i + j }));
      const decisions = wave.filter((w) => w.e.type !== "outcome");
      const answer = (w: { e: Record<string, unknown>; at: number }) => log.append({ ...w.e, decision_seq: seqOf.get(w.at - 1) }, { deferred: true });
      const write = async (w: { e: Record<string, unknown>; at: number }) => {
        const r = await log.append(w.e);
        seqOf.set(w.at, r.seq);
        return r;
      };
      if (i % 102 === 0) results.push(...(await Promise.all(decisions.map(write))));
      else for (const w of decisions) results.push(await write(w));
      results.push(...(await Promise.all(wave.filter((w) => w.e.type === "outcome").map(answer))));
    }
    await log.close();
    expect(results.map((r) => r.seq)).toEqual(results.map((r) => r.seq).sort((a, b) => a - b));

    const records = auditFiles(root).flatMap(readLinesOf).map((l) => JSON.parse(l) as Record<string, unknown>);
    const decisions = records.filter((r) => r.type === "decision");
    const sentDecisions = events.filter((e) => e.type !== "outcome");
    expect(decisions.length).toBe(sentDecisions.length);
    decisions.forEach((record, i) => {
      const { hash: _h, prev: _p, seq: _s, time: _t, ...fields } = record;
      expect(fields).toEqual(replaceLoneSurrogates(sentDecisions[i]!) as Record<string, unknown>);
    });
    const outcomes = records.flatMap(outcomesOf);
    const sentOutcomes = events.map((e, i) => ({ e, i })).filter(({ e }) => e.type === "outcome");
    expect(outcomes.length).toBe(sentOutcomes.length);
    outcomes.forEach((entry, n) => {
      const { e, i } = sentOutcomes[n]!;
      const { type: _type, ...sent } = e;
      expect(entry).toEqual(replaceLoneSurrogates({ ...sent, decision_seq: seqOf.get(i - 1) }) as Record<string, unknown>);
    });
    // The generator does reach the case that lost records: lone surrogates in many of them.
    expect(loneSurrogates).toBeGreaterThan(events.length / 2);

    const verified = await verifyAuditFiles([root], { keys: signer.jwks });
    expect(verified.break).toBeNull();
    expect(verified).toMatchObject({ ok: true, records: records.length, recordsAfterLastCheckpoint: 0, decisions: sentDecisions.length, outcomes: sentOutcomes.length, unknownOutcomes: 0 });
  });
});
