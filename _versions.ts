/**
 * Deleting a blob version: tombstone its version entry, delete its chunks,
 * delete the tombstone. Shared by overwrites, failed writes, `remove` and
 * `vacuum`, so a crash at any step leaves a tombstone that `vacuum` finishes.
 * (Overwrites and `remove` write the tombstone in the same atomic that
 * replaces the record, so a version is never live without a record.)
 *
 * @module
 */

import type { KvLike } from "./_kv_like.ts";
import { chunkKey, chunkPrefix, versionKey } from "./_kv_keys.ts";
import { DELETES_PER_ATOMIC, WRITE_ATOMICS_IN_FLIGHT } from "./_limits.ts";
import { encodeVersion, VERSION_TOMBSTONE } from "./_record.ts";

/** Deletes the given keys in as few atomics as the limits allow, a bounded number at once. */
async function deleteKeys(kv: KvLike, keys: readonly Deno.KvKey[]): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  for (let start = 0; start < keys.length && failure === undefined; start += DELETES_PER_ATOMIC) {
    while (inFlight.size >= WRITE_ATOMICS_IN_FLIGHT) await Promise.race(inFlight);
    const op = kv.atomic();
    for (const key of keys.slice(start, start + DELETES_PER_ATOMIC)) op.delete(key);
    const running: Promise<void> = op.commit().then(() => {}, (error) => {
      failure ??= { error };
    }).finally(() => inFlight.delete(running));
    inFlight.add(running);
  }
  await Promise.all(inFlight);
  if (failure) throw failure.error;
}

/**
 * Deletes the chunks of version `id`: by index when their count is known,
 * else by listing the id's prefix (a batch whose reply was lost may have
 * landed). Returns how many keys were deleted.
 */
export async function deleteChunks(
  kv: KvLike,
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
 * Deletes a tombstoned version's chunks, then its tombstone: in one atomic
 * when the chunk count is known and fits, else chunks first (so a crash
 * leaves the tombstone for vacuum), then the tombstone. Returns the number
 * of chunks deleted.
 */
export async function finishTombstone(
  kv: KvLike,
  id: Uint8Array,
  chunks?: number,
): Promise<number> {
  if (chunks !== undefined && chunks < DELETES_PER_ATOMIC) {
    const op = kv.atomic().delete(versionKey(id));
    for (let index = 0; index < chunks; index++) op.delete(chunkKey(id, index));
    await op.commit();
    return chunks;
  }
  const deleted = await deleteChunks(kv, id, chunks);
  await kv.delete(versionKey(id));
  return deleted;
}
