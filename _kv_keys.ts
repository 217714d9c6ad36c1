/**
 * Every Deno KV key kvcrypt writes besides the user's own record keys, built
 * in one place.
 *
 * Chunk and version keys carry the blob version id, never the user key, so a
 * user key may be as long as Deno KV allows and listing user keys returns
 * records only.
 *
 * @module
 */

/** The prefix under which all of kvcrypt's internal entries live. */
export const INTERNAL_PREFIX = "__kvcrypt__";

/** Key of chunk `index` of blob version `id`. */
export function chunkKey(id: Uint8Array, index: number): Deno.KvKey {
  return [INTERNAL_PREFIX, "chunk", id, index];
}

/** Prefix of all chunks of blob version `id`. */
export function chunkPrefix(id: Uint8Array): Deno.KvKey {
  return [INTERNAL_PREFIX, "chunk", id];
}

/** Key of the version entry of blob version `id`. */
export function versionKey(id: Uint8Array): Deno.KvKey {
  return [INTERNAL_PREFIX, "version", id];
}

/** Prefix of all version entries. */
export function versionPrefix(): Deno.KvKey {
  return [INTERNAL_PREFIX, "version"];
}
