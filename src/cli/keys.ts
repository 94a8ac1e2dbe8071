// `gateway keys add|remove|list TRUSTED.jwks …`: the trusted signer set as a file the operator
// edits with a command, never by hand. Every change is checked in full first (no private key,
// no `kid` or key listed twice, the result a valid trusted set) and then written in one atomic
// rename, so a refused command leaves the file exactly as it was.
import { readFile } from "node:fs/promises";
import type { JWK } from "jose";
import { algorithmOfPublicJwk, BundleCodes, keyThumbprint, parseTrustedKeySet, type BundleProblem } from "../bundle/mod.ts";
import { GatewayError } from "../errors.ts";
import { fileErrorReason, writeFileAtomic } from "../lib/mod.ts";
import { EXIT, type Io } from "./io.ts";

/** What `gateway keys` does to the set. */
export type KeysAction = "add" | "remove" | "list";
export const KEYS_ACTIONS: readonly KeysAction[] = ["add", "remove", "list"];

/** Parameters of `gateway keys`. */
export interface KeysParams {
  action: KeysAction;
  /** The trusted key set (JWKS) file: created by `add` when absent. */
  trustedKeysFile: string;
  /** `add`: public key files (a JWK, or a JWKS such as another machine's `trusted.jwks`). `remove`: key ids or `.jwk` files naming them. */
  operands: readonly string[];
}

function problem(code: BundleProblem["code"], message: string): BundleProblem {
  return { code, message };
}

/** Reads the set; a missing file is the empty set (`add` creates it), anything else unreadable is an error. */
async function readSetOrEmpty(path: string, mustExist: boolean): Promise<JWK[] | BundleProblem> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !mustExist) return [];
    return problem(BundleCodes.KEY_INVALID, `cannot read trusted key set \`${path}\`: ${fileErrorReason(error)}`);
  }
  try {
    return parseTrustedKeySet(JSON.parse(text), `trusted key set \`${path}\``).keys;
  } catch (error) {
    return problem(BundleCodes.KEY_INVALID, error instanceof GatewayError ? error.message : `trusted key set \`${path}\` is not JSON`);
  }
}

/** The public keys a file offers: one JWK, or every member of a JWKS. */
async function readCandidateKeys(path: string): Promise<{ keys: JWK[] } | { problems: BundleProblem[] }> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    const why = error instanceof SyntaxError ? "is not JSON" : `cannot be read: ${fileErrorReason(error)}`;
    return { problems: [problem(BundleCodes.KEY_INVALID, `key file \`${path}\` ${why}`)] };
  }
  const members = value !== null && typeof value === "object" && Array.isArray((value as { keys?: unknown }).keys) ? (value as { keys: unknown[] }).keys : [value];
  const keys: JWK[] = [];
  const problems: BundleProblem[] = [];
  for (const [index, member] of members.entries()) {
    const where = members.length === 1 && member === value ? `key file \`${path}\`` : `key file \`${path}\` keys[${index}]`;
    if (member !== null && typeof member === "object" && "d" in member) {
      // The one mistake that leaks a signer's power: refuse it by name, before any other check.
      problems.push(problem(BundleCodes.KEY_PRIVATE, `${where} is a private key; trust only the public half (\`<kid>.public.jwk\`) and keep the private key with its signer`));
      continue;
    }
    try {
      keys.push(...parseTrustedKeySet({ keys: [member] }, where).keys);
    } catch (error) {
      problems.push(problem(BundleCodes.KEY_INVALID, error instanceof GatewayError ? error.message.replace(`${where} keys[0]`, where) : String(error)));
    }
  }
  return problems.length > 0 ? { problems } : { keys };
}

/** Only the public members a trusted set keeps, in a stable order (no `d`, no stray fields). */
function publicMembers(jwk: JWK): JWK {
  const { kty, crv, x, y, kid, use } = jwk;
  const alg = algorithmOfPublicJwk(jwk)!;
  return Object.fromEntries(Object.entries({ kty, crv, x, y, kid, alg, use: use ?? "sig" }).filter(([, v]) => v !== undefined)) as JWK;
}

async function writeSet(path: string, keys: readonly JWK[]): Promise<void> {
  // Revalidate what is about to be written: the file the gateway loads must pass its own parser.
  parseTrustedKeySet({ keys }, `trusted key set \`${path}\``);
  await writeFileAtomic(path, `${JSON.stringify({ keys }, null, 2)}\n`, 0o644);
}

async function addKeys(params: KeysParams, io: Io): Promise<number> {
  if (params.operands.length === 0) {
    io.err(`error[${BundleCodes.USAGE}]: \`keys add\` needs at least one public key file: gateway keys add TRUSTED.jwks PUBLIC.jwk…`);
    return EXIT.usage;
  }
  const current = await readSetOrEmpty(params.trustedKeysFile, false);
  if (!Array.isArray(current)) {
    io.err(`error[${current.code}]: ${current.message}`);
    return EXIT.usage;
  }
  const problems: BundleProblem[] = [];
  let unreadable = false;
  const next = [...current];
  const byKid = new Map(current.map((k) => [k.kid!, k]));
  const byThumbprint = new Map<string, string>();
  for (const key of current) byThumbprint.set(await keyThumbprint(key), key.kid!);
  const added: string[] = [];
  const already: string[] = [];
  for (const file of params.operands) {
    const read = await readCandidateKeys(file);
    if ("problems" in read) {
      problems.push(...read.problems);
      unreadable ||= read.problems.some((p) => p.code === BundleCodes.KEY_INVALID);
      continue;
    }
    for (const key of read.keys) {
      const kid = key.kid!;
      const thumbprint = await keyThumbprint(key);
      const sameKid = byKid.get(kid);
      if (sameKid !== undefined) {
        if ((await keyThumbprint(sameKid)) === thumbprint) already.push(kid);
        else problems.push(problem(BundleCodes.KEY_EXISTS, `\`${file}\`: key id \`${kid}\` is already trusted with another key; remove it first (\`gateway keys remove ${params.trustedKeysFile} ${kid}\`) to replace it`));
        continue;
      }
      const otherKid = byThumbprint.get(thumbprint);
      if (otherKid !== undefined) {
        // One key under two ids would look like two signers to a reader of the set.
        problems.push(problem(BundleCodes.KEY_EXISTS, `\`${file}\`: key \`${kid}\` is the same key as the trusted \`${otherKid}\``));
        continue;
      }
      const member = publicMembers(key);
      next.push(member);
      byKid.set(kid, member);
      byThumbprint.set(thumbprint, kid);
      added.push(kid);
    }
  }
  if (problems.length > 0) {
    for (const p of problems) io.err(`error[${p.code}]: ${p.message}`);
    io.err(`trusted key set \`${params.trustedKeysFile}\` left unchanged`);
    return unreadable ? EXIT.usage : EXIT.verificationFailed;
  }
  if (added.length > 0) await writeSet(params.trustedKeysFile, next);
  for (const kid of already) io.out(`\`${kid}\` is already trusted (same key); nothing to add`);
  if (added.length > 0) io.out(`added ${added.map((k) => `\`${k}\``).join(", ")} to trusted key set \`${params.trustedKeysFile}\` (${next.length} key(s))`);
  return EXIT.ok;
}

/** A `remove` operand: a key id, or a `.jwk`/`.jwks` file whose key ids are meant. */
async function kidsOf(operand: string): Promise<string[] | BundleProblem> {
  if (!/\.jwks?$/.test(operand)) return [operand];
  let value: unknown;
  try {
    value = JSON.parse(await readFile(operand, "utf8"));
  } catch (error) {
    return problem(BundleCodes.KEY_INVALID, `key file \`${operand}\` ${error instanceof SyntaxError ? "is not JSON" : `cannot be read: ${fileErrorReason(error)}`}`);
  }
  // Only the ids are taken: a private key file names the key to revoke just as well.
  const members = value !== null && typeof value === "object" && Array.isArray((value as { keys?: unknown }).keys) ? (value as { keys: unknown[] }).keys : [value];
  const kids = members.map((m) => (m !== null && typeof m === "object" ? (m as { kid?: unknown }).kid : undefined));
  if (kids.length === 0 || kids.some((k) => typeof k !== "string" || k === "")) return problem(BundleCodes.KEY_INVALID, `key file \`${operand}\` has a key without a \`kid\``);
  return kids as string[];
}

async function removeKeys(params: KeysParams, io: Io): Promise<number> {
  if (params.operands.length === 0) {
    io.err(`error[${BundleCodes.USAGE}]: \`keys remove\` needs at least one key id or public key file: gateway keys remove TRUSTED.jwks KID…`);
    return EXIT.usage;
  }
  const current = await readSetOrEmpty(params.trustedKeysFile, true);
  if (!Array.isArray(current)) {
    io.err(`error[${current.code}]: ${current.message}`);
    return EXIT.usage;
  }
  const problems: BundleProblem[] = [];
  const removing = new Set<string>();
  for (const operand of params.operands) {
    const kids = await kidsOf(operand);
    if (!Array.isArray(kids)) {
      problems.push(kids);
      continue;
    }
    for (const kid of kids) {
      if (current.some((k) => k.kid === kid)) removing.add(kid);
      else problems.push(problem(BundleCodes.KEY_UNKNOWN, `key id \`${kid}\` is not in trusted key set \`${params.trustedKeysFile}\`${knownKidsHint(current)}`));
    }
  }
  if (problems.length > 0) {
    for (const p of problems) io.err(`error[${p.code}]: ${p.message}`);
    io.err(`trusted key set \`${params.trustedKeysFile}\` left unchanged`);
    return problems.some((p) => p.code === BundleCodes.KEY_INVALID) ? EXIT.usage : EXIT.verificationFailed;
  }
  const next = current.filter((k) => !removing.has(k.kid!));
  await writeSet(params.trustedKeysFile, next);
  io.out(`removed ${[...removing].map((k) => `\`${k}\``).join(", ")} from trusted key set \`${params.trustedKeysFile}\` (${next.length} key(s) left)`);
  if (next.length === 0) io.err(`warning: trusted key set \`${params.trustedKeysFile}\` is empty: no signed bundle verifies against it`);
  return EXIT.ok;
}

function knownKidsHint(keys: readonly JWK[]): string {
  const known = keys.map((k) => k.kid!);
  return known.length === 0 ? " (the set is empty)" : `; it has ${known.map((k) => `\`${k}\``).join(", ")}`;
}

async function listKeys(params: KeysParams, io: Io): Promise<number> {
  if (params.operands.length > 0) {
    io.err(`error[${BundleCodes.USAGE}]: \`keys list\` takes only the key set: gateway keys list TRUSTED.jwks`);
    return EXIT.usage;
  }
  const current = await readSetOrEmpty(params.trustedKeysFile, true);
  if (!Array.isArray(current)) {
    io.err(`error[${current.code}]: ${current.message}`);
    return EXIT.usage;
  }
  if (current.length === 0) io.out(`trusted key set \`${params.trustedKeysFile}\` is empty`);
  for (const key of current) io.out(`${key.kid}  ${algorithmOfPublicJwk(key)}  sha256:${await keyThumbprint(key)}`);
  return EXIT.ok;
}

/**
 * `gateway keys add|remove|list TRUSTED.jwks …`. `add` takes public key files (a JWK or a JWKS)
 * and refuses a private key (`BUNDLE_KEY_PRIVATE`), a `kid` already trusted with another key or
 * one key under a second `kid` (`BUNDLE_KEY_EXISTS`); re-adding a key already trusted is a no-op.
 * `remove` takes key ids (or key files naming them) and refuses an unknown one
 * (`BUNDLE_KEY_UNKNOWN`). Nothing is written unless every operand is accepted. Exit 0 ok,
 * 4 refused, 64 usage or unreadable input.
 *
 * @example
 * await runKeys({ action: "add", trustedKeysFile: "trusted-signers.jwks", operands: ["alice.public.jwk", "bob.public.jwk"] }, io);
 */
export async function runKeys(params: KeysParams, io: Io): Promise<number> {
  switch (params.action) {
    case "add":
      return addKeys(params, io);
    case "remove":
      return removeKeys(params, io);
    case "list":
      return listKeys(params, io);
  }
}
