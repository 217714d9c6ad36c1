/**
 * Deleting a blob version: tombstone its version entry, delete its chunks,
 * delete the tombstone. Shared by overwrites, failed writes, `remove` and
 * `vacuum`, so a crash at any step leaves a tombstone that `vacuum` finishes.
 *
 * @module
 */

import { chunkKey, chunkPrefix, versionKey } from "./_kv_keys.ts";
import { DELETES_PER_ATOMIC } from "./_limits.ts";
import { decodeVersion, encodeVersion, VERSION_LIVE, VERSION_TOMBSTONE } from "./_record.ts";

/** Deletes the given keys in as few atomics as the limits allow. */
async function deleteKeys(kv: Deno.Kv, keys: readonly Deno.KvKey[]): Promise<void> {
  const batches: Promise<unknown>[] = [];
  for (let start = 0; start < keys.length; start += DELETES_PER_ATOMIC) {
    const op = kv.atomic();
    for (const key of keys.slice(start, start + DELETES_PER_ATOMIC)) op.delete(key);
    batches.push(op.commit());
  }
  await Promise.all(batches);
}

/**
 * Deletes the chunks of version `id`: by index when their count is known,
 * else by listing the id's prefix (a batch whose reply was lost may have
 * landed). Returns how many keys were deleted.
 */
export async function deleteChunks(
  kv: Deno.Kv,
  id: Uint8Array,
  count?: number,
): Promise<number> {
  let keys: Deno.KvKey[];
  if (count === undefined) {
    keys = [];
    for await (const entry of kv.list({ prefix: chunkPrefix(id) })) keys.push(entry.key);
  } else {
    keys = Array.from({ length: count }, (_, index) => chunkKey(id, index));
  }
  await deleteKeys(kv, keys);
  return keys.length;
}

/**
 * Makes the tombstone bytes for a version entry, keeping its user key and
 * stamping the time it was tombstoned.
 */
export function tombstoneOf(encodedKey: Uint8Array): Uint8Array {
  return encodeVersion({ state: VERSION_TOMBSTONE, created: Date.now(), encodedKey });
}

/**
 * Deletes a version that no record points to any more (after an overwrite
 * or `remove`): tombstones its version entry with a checked write, then
 * deletes its chunks and the tombstone. Returns the number of chunks deleted,
 * or 0 when someone else (vacuum) got there first.
 */
export async function deleteReplacedVersion(
  kv: Deno.Kv,
  id: Uint8Array,
  chunks: number,
): Promise<number> {
  const key = versionKey(id);
  const entry = await kv.get<Uint8Array>(key);
  const version = decodeVersion(entry.value);
  if (version === undefined || version.state !== VERSION_LIVE) return 0;
  // A checked write: if vacuum tombstoned it meanwhile, it owns the deletion.
  const tombstoned = await kv.atomic().check(entry).set(key, tombstoneOf(version.encodedKey))
    .commit();
  if (!tombstoned.ok) return 0;
  return await finishTombstone(kv, id, chunks);
}

/** Deletes a tombstoned version's chunks, then its tombstone. */
export async function finishTombstone(
  kv: Deno.Kv,
  id: Uint8Array,
  chunks?: number,
): Promise<number> {
  const deleted = await deleteChunks(kv, id, chunks);
  await kv.delete(versionKey(id));
  return deleted;
}
