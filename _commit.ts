/**
 * Committing an atomic whose reply may be lost: a commit that throws (a
 * dropped connection, a timeout) may still have applied, so before it fails
 * the caller's protocol looks at the store. Every write protocol commits
 * through here: `set`, `stage`, `remove` and `rewrap`.
 *
 * @module
 */

import type { AtomicLike } from "./_kv_like.ts";

/**
 * Looks, after a commit threw, whether it applied: the versionstamp the
 * commit wrote when it did, undefined when it did not.
 */
export type AppliedCheck = () => Promise<string | undefined>;

/**
 * Commits `op`. When the commit throws, `applied` looks at the store: a
 * commit that applied resolves `{ ok: true }` with the versionstamp it found,
 * one that did not rethrows the commit's error.
 *
 * @param op The atomic operation to commit.
 * @param applied How to tell, from the store, that this commit applied.
 * @returns The commit's result, or the result it had when its reply was lost.
 */
export async function commitAndVerify(
  op: AtomicLike,
  applied: AppliedCheck,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  try {
    return await op.commit();
  } catch (error) {
    // The reply may be lost although the commit applied: look before failing.
    const versionstamp = await applied();
    if (versionstamp === undefined) throw error;
    return { ok: true, versionstamp };
  }
}
