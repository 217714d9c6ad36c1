/**
 * Finding and removing what crashed or abandoned writes left behind.
 *
 * @module
 */

import type { KvLike } from "./_kv_like.ts";
import { bytesEqual } from "./_bytes.ts";
import { versionPrefix } from "./_kv_keys.ts";
import { KV_KEY_MAX, VACUUM_LIST_BATCH } from "./_limits.ts";
import {
  decodeVersion,
  newerFormatMagic,
  VERSION_TOMBSTONE,
  type VersionEntry,
} from "./_record.ts";
import { recordId } from "./_summary.ts";
import { decodeKey, kvKeySize } from "./_user_key.ts";
import { finishTombstone, tombstoneOf } from "./_versions.ts";

/**
 * Removes versions older than `olderThan` ms that no record points to, and
 * finishes tombstones of that age. Returns what it removed.
 */
export async function vacuumVersions(
  kv: KvLike,
  olderThan: number,
): Promise<{ versions: number; chunks: number }> {
  const cutoff = Date.now() - olderThan;
  const removed = { versions: 0, chunks: 0 };
  const versions = kv.list<Uint8Array>({ prefix: versionPrefix() }, {
    batchSize: VACUUM_LIST_BATCH,
    consistency: "strong",
  });
  for await (const entry of versions) {
    const id = entry.key[2];
    const version = decodeVersion(entry.value);
    if (!(id instanceof Uint8Array) || version === undefined || version.created > cutoff) continue;
    if (version.state !== VERSION_TOMBSTONE && !await tombstoneOrphan(kv, entry, version, id)) {
      continue;
    }
    removed.chunks += await finishTombstone(kv, id);
    removed.versions++;
  }
  return removed;
}

/**
 * Tombstones a live version no record points to, in an atomic that checks
 * both the record and the version entry. False when the version is live or
 * someone changed either entry meanwhile.
 */
async function tombstoneOrphan(
  kv: KvLike,
  entry: Deno.KvEntry<Uint8Array>,
  version: VersionEntry,
  id: Uint8Array,
): Promise<boolean> {
  let userKey: Deno.KvKey;
  try {
    userKey = decodeKey(version.encodedKey);
  } catch {
    return false;
  }
  const op = kv.atomic().check(entry).set(entry.key, tombstoneOf(version.encodedKey));
  // A key Deno KV cannot store holds no record (and reading it would throw).
  if (kvKeySize(userKey) <= KV_KEY_MAX) {
    const record = await kv.get(userKey);
    const current = recordId(record.value);
    if (current !== undefined && bytesEqual(current, id)) return false;
    // A newer format's record may point to this version: only its own version may free it.
    if (newerFormatMagic(record.value) !== undefined) return false;
    // Checks the record too: a writer publishing this version wins.
    op.check(record);
  }
  return (await op.commit()).ok;
}
