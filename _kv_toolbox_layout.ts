/**
 * How kv-toolbox 0.30 (kitsonk/kv-toolbox) lays a blob out in Deno KV, read
 * back for the migration: the value's bytes in parts `[...key,
 * "__kv_toolbox_blob__", 1]`, `2`, … (as they arrived, at most 63,000 bytes
 * each) and its metadata, a plain object, at `[...key, "__kv_toolbox_meta__"]`.
 * A blob exists for kv-toolbox while its metadata entry does.
 *
 * @module
 */

import type { KvLike, KvListIteratorLike } from "./_kv_like.ts";
import { concat } from "./_bytes.ts";
import { CorruptBlobError } from "./_errors.ts";
import { isRecord } from "./_guards.ts";
import { KV_ATOMIC_KEY_BYTES_MAX, KV_ATOMIC_MUTATIONS_MAX } from "./_limits.ts";
import { describeKey, kvKeySize } from "./_user_key.ts";
import type { BlobKind } from "./_types.ts";

/** The key part under which kv-toolbox stores a blob's numbered parts. */
export const KVTB_PARTS = "__kv_toolbox_blob__";
/** The key part of kv-toolbox's metadata entry. */
export const KVTB_META = "__kv_toolbox_meta__";
/** Parts fetched per list page: kv-toolbox's own page size, about 630 KB of parts. */
const PARTS_PER_PAGE = 10;

/** A kv-toolbox blob's metadata, checked. */
export interface KvToolboxMeta {
  /** `"buffer"` (bytes or a stream), `"blob"` or `"file"`, as kvcrypt names them too. */
  kind: BlobKind;
  /** Whether kv-toolbox's CryptoKv wrote it (one AES-GCM message over the whole value). */
  encrypted: boolean;
  /** Bytes stored in the parts (the ciphertext's length when encrypted), when recorded. */
  size: number | undefined;
  /** The Blob's or File's type. */
  type: string;
  /** The File's name. */
  name: string | undefined;
  /** The File's lastModified. */
  lastModified: number | undefined;
}

/** Key of a blob's metadata entry. */
export function metaKeyOf(key: Deno.KvKey): Deno.KvKey {
  return [...key, KVTB_META];
}

/** Prefix of a blob's parts. */
export function partsPrefixOf(key: Deno.KvKey): Deno.KvKey {
  return [...key, KVTB_PARTS];
}

/** The blob key of a metadata entry's key, or undefined when it is not one. */
export function blobKeyOfMeta(key: Deno.KvKey): Deno.KvKey | undefined {
  return key.length >= 2 && key[key.length - 1] === KVTB_META ? key.slice(0, -1) : undefined;
}

/** The blob key of a part's key, or undefined when it is not one. */
export function blobKeyOfPart(key: Deno.KvKey): Deno.KvKey | undefined {
  const isPart = key.length >= 3 && key[key.length - 2] === KVTB_PARTS &&
    Number.isInteger(key[key.length - 1]);
  return isPart ? key.slice(0, -2) : undefined;
}

function invalidMeta(key: Deno.KvKey, what: string): CorruptBlobError {
  return new CorruptBlobError(
    `Cannot migrate ${describeKey(key)}: its kv-toolbox metadata ${what}`,
  );
}

/**
 * Checks the value of a metadata entry.
 *
 * @throws {CorruptBlobError} when it is not what kv-toolbox 0.30 writes.
 */
export function parseKvToolboxMeta(key: Deno.KvKey, value: unknown): KvToolboxMeta {
  if (!isRecord(value)) throw invalidMeta(key, "is not an object");
  const { kind, encrypted = false, size, type = "", name, lastModified } = value;
  if (kind !== "buffer" && kind !== "blob" && kind !== "file") {
    throw invalidMeta(key, "has an unknown kind");
  }
  if (typeof encrypted !== "boolean" || typeof type !== "string") {
    throw invalidMeta(key, "has an `encrypted` or `type` of the wrong type");
  }
  if (size !== undefined && !(Number.isSafeInteger(size) && (size as number) >= 0)) {
    throw invalidMeta(key, "has a size that is not a byte count");
  }
  if (kind === "file" && (typeof name !== "string" || typeof lastModified !== "number")) {
    throw invalidMeta(key, "of a File lacks its name or lastModified");
  }
  return {
    kind,
    encrypted,
    size: size as number | undefined,
    type: kind === "buffer" ? "" : type,
    name: kind === "file" ? name as string : undefined,
    lastModified: kind === "file" ? lastModified as number : undefined,
  };
}

function partsList(kv: KvLike, key: Deno.KvKey): KvListIteratorLike<unknown> {
  return kv.list({ prefix: partsPrefixOf(key) }, {
    batchSize: PARTS_PER_PAGE,
    consistency: "strong",
  });
}

/** How many parts a read has delivered so far. */
export interface PartTally {
  /** Parts delivered: they are numbered 1 to this. */
  parts: number;
}

/**
 * The parts as kv-toolbox reads them: `1`, `2`, … up to the first gap, each
 * a Uint8Array, whose lengths add up to the recorded size (when recorded).
 * Memory holds one page of parts at a time.
 *
 * @throws {CorruptBlobError} (from the iteration) for a part that is not a
 * Uint8Array or a total that is not the recorded size.
 */
export async function* readParts(
  kv: KvLike,
  key: Deno.KvKey,
  meta: KvToolboxMeta,
  tally: PartTally = { parts: 0 },
): AsyncGenerator<Uint8Array> {
  const depth = key.length + 1;
  let expected = 1;
  let total = 0;
  for await (const entry of partsList(kv, key)) {
    // kv-toolbox stops at the first part out of sequence; so does the migration.
    if (entry.key.length !== depth + 1 || entry.key[depth] !== expected) break;
    if (!(entry.value instanceof Uint8Array)) {
      throw new CorruptBlobError(
        `Cannot migrate ${describeKey(key)}: kv-toolbox part ${expected} is not a Uint8Array`,
      );
    }
    tally.parts = expected++;
    total += entry.value.length;
    yield entry.value;
  }
  // Stops a truncated or padded blob from being migrated as if it were whole.
  if (meta.size !== undefined && total !== meta.size) {
    throw new CorruptBlobError(
      `Cannot migrate ${
        describeKey(key)
      }: its kv-toolbox parts hold ${total} bytes, its metadata says ${meta.size}`,
    );
  }
}

/**
 * The parts as one stream, read page by page as the consumer pulls.
 *
 * @returns A stream that errors with CorruptBlobError as {@linkcode readParts} throws.
 */
export function partsStream(
  kv: KvLike,
  key: Deno.KvKey,
  meta: KvToolboxMeta,
  tally?: PartTally,
): ReadableStream<Uint8Array> {
  const parts = readParts(kv, key, meta, tally);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await parts.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel() {
      await parts.return(undefined);
    },
  });
}

/**
 * All parts in one buffer (an encrypted blob must be opened whole).
 *
 * @throws {CorruptBlobError} as {@linkcode readParts}.
 */
export async function readAllParts(
  kv: KvLike,
  key: Deno.KvKey,
  meta: KvToolboxMeta,
  tally?: PartTally,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of readParts(kv, key, meta, tally)) parts.push(part);
  return concat(parts);
}

/**
 * Part deletes per atomic: as many part keys as fit the atomic's key bytes
 * and mutations, one of each left for the metadata's absence check.
 */
function deletesPerAtomic(key: Deno.KvKey): number {
  const partKeyBytes = kvKeySize([...key, KVTB_PARTS, 0]);
  const byBytes = Math.floor(KV_ATOMIC_KEY_BYTES_MAX / partKeyBytes) - 1;
  return Math.max(1, Math.min(KV_ATOMIC_MUTATIONS_MAX - 1, byBytes));
}

/**
 * Deletes a blob's parts once its metadata is gone: parts `1` to `known` by
 * key, then whatever else lies under its parts prefix. Each atomic checks
 * that the metadata is still absent, so a blob kv-toolbox writes anew at the
 * key meanwhile keeps its parts.
 *
 * @returns Whether every part is gone (false: the metadata came back).
 */
export async function deleteParts(kv: KvLike, key: Deno.KvKey, known: number): Promise<boolean> {
  const perAtomic = deletesPerAtomic(key);
  const prefix = partsPrefixOf(key);
  const absent = { key: metaKeyOf(key), versionstamp: null };
  const commit = async (keys: Deno.KvKey[]) => {
    const op = kv.atomic().check(absent);
    for (const partKey of keys) op.delete(partKey);
    return (await op.commit()).ok;
  };
  for (let first = 1; first <= known; first += perAtomic) {
    const count = Math.min(perAtomic, known - first + 1);
    if (!await commit(Array.from({ length: count }, (_, i) => [...prefix, first + i]))) {
      return false;
    }
  }
  let batch: Deno.KvKey[] = [];
  for await (const entry of partsList(kv, key)) {
    batch.push(entry.key);
    if (batch.length < perAtomic) continue;
    if (!await commit(batch)) return false;
    batch = [];
  }
  return batch.length === 0 || await commit(batch);
}
