// A helper for other modules' tests: sign a bundle directory with several keys through the real
// signing path (no shortcuts), so integration tests exercise what `gateway sign` writes.
import { importSigningKey, signBundle, type SignBundleResult, type SigningKeyPair } from "../../src/bundle/mod.ts";

/**
 * Signs `dir` with each key in turn: the first issues `revision` (default: previous + 1, or 1),
 * the rest add their signatures. Returns the result of the last signature.
 *
 * @example
 * const alice = await generateSigningKey({ kid: "alice" });
 * const bob = await generateSigningKey({ kid: "bob" });
 * await signBundleForTest(dir, [alice, bob], { revision: 1 });
 */
export async function signBundleForTest(
  dir: string,
  keys: readonly SigningKeyPair[],
  options: { revision?: number; expiresAt?: Date; now?: Date } = {},
): Promise<SignBundleResult> {
  if (keys.length === 0) throw new Error("signBundleForTest needs at least one key");
  let result: SignBundleResult | null = null;
  for (const [index, pair] of keys.entries()) {
    const key = await importSigningKey(pair.privateJwk);
    const now = options.now === undefined ? {} : { now: options.now };
    result =
      index === 0
        ? await signBundle(dir, key, {
            ...now,
            ...(options.revision === undefined ? { newRevision: true } : { revision: options.revision }),
            ...(options.expiresAt === undefined ? {} : { expiresAt: options.expiresAt }),
          })
        : await signBundle(dir, key, now);
  }
  return result!;
}
