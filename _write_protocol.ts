/**
 * The write protocol behind `set`, `stage` and `remove` (DESIGN section 4):
 * validate, write the chunks, commit the record with its checks, retry a
 * lost race, and delete the replaced version or clean up after a failure.
 *
 * @module
 */

import type { AtomicLike, KvLike } from "./_kv_like.ts";
import { ConcurrentModificationError } from "./_errors.ts";
import { plainWriteFormat } from "./_kvp1.ts";
import { type KeyMaterial, resolveWriteRecipients } from "./_key_input.ts";
import { versionKey } from "./_kv_keys.ts";
import { createSealedFormat } from "./_kvc1.ts";
import { CHUNK_GRACE_MS, KV_DEADLINE_MAX } from "./_limits.ts";
import { encodeMeta, type WriteFormat } from "./_record.ts";
import { applyMetadata, fixedPieces, type MetadataOptions, sourceOf } from "./_source.ts";
import { isExpired, summarizeRecord } from "./_summary.ts";
import { assertUserKey, describeKey, encodeKey } from "./_user_key.ts";
import { finishTombstone, tombstoneOf } from "./_versions.ts";
import {
  assertBeforeDeadline,
  expiryOptions,
  VersionWriter,
  type WriteTarget,
} from "./_chunk_writer.ts";

/** Options of {@linkcode set} and {@linkcode stage}. */
export interface SetOptions extends MetadataOptions {
  /**
   * Encrypt every chunk and the metadata for this one key or key ring (its
   * current key). An array is a `TypeError`: pass several recipients as
   * `recipients`. Not together with `recipients`.
   */
  encryptionKey?: KeyMaterial | undefined;
  /**
   * Encrypt for several recipients: the blob's secret is wrapped once for
   * each entry (a key, a key ring's current key, or a `KeyWrapper`), and any
   * one of them reads the blob. 1 to 16 entries; not together with
   * `encryptionKey`.
   */
  recipients?: readonly KeyMaterial[] | undefined;
  /** Milliseconds until the blob expires and reads as absent. */
  expireIn?: number | undefined;
  /**
   * Compare-and-set: commit only if the record's versionstamp is this one
   * (`null`: only if no blob is stored at the key). On a mismatch the write
   * resolves to `{ ok: false }` and leaves nothing behind.
   */
  versionstamp?: string | null | undefined;
  /** Aborts the write; it rejects with the signal's reason and leaves nothing behind. */
  signal?: AbortSignal | undefined;
  /** Called with the number of bytes committed so far; what it throws is ignored. */
  onProgress?: ((bytesWritten: number) => void) | undefined;
}

/** A create-only write over a live blob: the record commit must fail. */
export const CONFLICT = Symbol("conflict");

/** The chunked version a record commit replaces, if any. */
export interface ReplacedVersion {
  id: Uint8Array;
  chunks: number;
}

/** What a record commit checks and replaces, read from the record it replaces. */
export interface CommitPlan {
  /** The record versionstamp to check, or CONFLICT. */
  expected: string | null | typeof CONFLICT;
  /** The chunked version the commit replaces (tombstoned in the same atomic). */
  replaced: ReplacedVersion | undefined;
}

/** Plans a record commit over `current` (parsed once) for the caller's versionstamp option. */
export function planCommit(
  current: Deno.KvEntryMaybe<unknown>,
  requested: string | null | undefined,
): CommitPlan {
  const summary = summarizeRecord(current.value);
  const replaced = summary === undefined || summary.inline ? undefined : summary;
  if (requested !== null) {
    return { expected: requested === undefined ? current.versionstamp : requested, replaced };
  }
  if (current.versionstamp === null) return { expected: null, replaced };
  // An expired blob not yet purged counts as absent for a create-only write.
  const expired = summary !== undefined && isExpired(summary);
  return { expected: expired ? current.versionstamp : CONFLICT, replaced };
}

/**
 * Adds a prepared write's record commit to `op`: the record's check (a
 * CONFLICT checks for absence, so the commit fails), the version entry's
 * check, the record, and the replaced version's tombstone.
 */
export function addRecordCommit<Op extends AtomicLike>(
  op: Op,
  prepared: PreparedWrite,
  plan: CommitPlan,
): Op {
  const { target, writer, record } = prepared;
  op.check({ key: target.key, versionstamp: plan.expected === CONFLICT ? null : plan.expected });
  // A vacuum that removed this version makes the commit fail instead of
  // publishing a record whose chunks are going away.
  if (writer.versionstamp !== null) {
    op.check({ key: writer.versionKey, versionstamp: writer.versionstamp });
  }
  writer.addHeldChunks(op).set(target.key, record, expiryOptions(target.deadline));
  return tombstoneReplaced(op, plan.replaced, target.key);
}

/** A Deno KV versionstamp: 20 lower-case hex digits. */
const VERSIONSTAMP = /^[0-9a-f]{20}$/;

/** Checks a caller's versionstamp option before it reaches Deno KV. */
export function assertVersionstamp(versionstamp: unknown, action: string): void {
  if (
    versionstamp !== undefined && versionstamp !== null &&
    (typeof versionstamp !== "string" || !VERSIONSTAMP.test(versionstamp))
  ) {
    throw new TypeError(
      `Cannot ${action}: versionstamp must be null or a Deno KV versionstamp (20 hex digits)`,
    );
  }
}

function validateSetOptions(options: SetOptions, keyText: string): number {
  const { expireIn, versionstamp } = options;
  assertVersionstamp(versionstamp, `store ${keyText}`);
  if (expireIn === undefined) return 0;
  if (typeof expireIn !== "number") {
    throw new TypeError(`Cannot store ${keyText}: expireIn must be a number of milliseconds`);
  }
  // Whole milliseconds, as Deno KV takes them; chunks outlive the record by the grace period.
  const deadline = Date.now() + Math.ceil(expireIn);
  if (!(expireIn > 0) || !(deadline + CHUNK_GRACE_MS <= KV_DEADLINE_MAX)) {
    throw new RangeError(
      `Cannot store ${keyText}: expireIn must be a positive number of milliseconds that Deno KV accepts`,
    );
  }
  return deadline;
}

/**
 * Tombstones the replaced version in the atomic that replaces its record, so
 * no version is ever live without a record pointing to it.
 */
export function tombstoneReplaced<Op extends AtomicLike>(
  op: Op,
  replaced: ReplacedVersion | undefined,
  key: Deno.KvKey,
): Op {
  return replaced === undefined ? op : op.set(versionKey(replaced.id), tombstoneOf(encodeKey(key)));
}

/** Deletes the replaced version's chunks and tombstone; leftovers of a failure are vacuum's. */
export async function deleteReplaced(
  kv: KvLike,
  replaced: ReplacedVersion | undefined,
): Promise<void> {
  if (replaced === undefined) return;
  try {
    await finishTombstone(kv, replaced.id, replaced.chunks);
  } catch {
    // The new value is committed; a crash here leaves a tombstone vacuum finishes.
  }
}

async function writeFormat(
  options: SetOptions,
  id: Uint8Array,
  keyText: string,
): Promise<WriteFormat> {
  const recipients = await resolveWriteRecipients(options, `store ${keyText}`);
  return recipients === undefined ? plainWriteFormat : createSealedFormat(recipients, id);
}

/** A version written but not yet published, with the record it will publish. */
export interface PreparedWrite {
  target: WriteTarget;
  writer: VersionWriter;
  record: Uint8Array;
  current: Deno.KvEntryMaybe<unknown>;
}

/**
 * Step 1 of the write protocol: validates everything, then writes the chunks
 * while the current record is read. With `oneCommit` (`set`), a last batch
 * of at most `CHUNKS_IN_RECORD_COMMIT` chunks goes into the record commit; a
 * blob of no more chunks writes nothing yet (its version entry goes there
 * too: one atomic). On failure nothing is left behind.
 */
export async function prepareWrite(
  kv: KvLike,
  key: Deno.KvKey,
  value: unknown,
  options: SetOptions,
  oneCommit = false,
): Promise<PreparedWrite> {
  assertUserKey(key, "store the blob");
  const keyText = describeKey(key);
  const source = sourceOf(value, `store ${keyText}`);
  let writer: VersionWriter | undefined;
  let pieces: AsyncGenerator<Uint8Array> | undefined;
  try {
    const deadline = validateSetOptions(options, keyText);
    const meta = applyMetadata(source.meta, options, `store ${keyText}`);
    encodeMeta(meta, keyText);
    options.signal?.throwIfAborted();
    const target: WriteTarget = {
      kv,
      key,
      keyText,
      deadline,
      signal: options.signal,
      onProgress: options.onProgress,
    };
    writer = new VersionWriter(target);
    const current = kv.get(key);
    current.catch(() => {});
    const format = await writeFormat(options, writer.id, keyText);
    pieces = fixedPieces(source.stream, format.chunkSize, options.signal, keyText);
    const record = await writer.write(pieces, format, meta, oneCommit);
    return { target, writer, record, current: await current };
  } catch (error) {
    await pieces?.return(undefined).catch(() => {});
    // Releases the caller's stream (a request body, say) whatever stopped the write.
    if (!source.stream.locked) await source.stream.cancel(error).catch(() => {});
    await writer?.abandon();
    throw error;
  }
}

/**
 * Steps 2–4 of the write protocol: commits the record with its checks,
 * retries a lost race (without a caller versionstamp), deletes the replaced
 * version, and cleans up on any failure.
 */
export async function commitWrite(
  prepared: PreparedWrite,
  requested: string | null | undefined,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  const { target, writer } = prepared;
  const { kv, key, keyText } = target;
  let current = prepared.current;
  for (;;) {
    const plan = planCommit(current, requested);
    if (plan.expected === CONFLICT) {
      await writer.abandon();
      return { ok: false };
    }
    try {
      assertBeforeDeadline(target);
    } catch (error) {
      await writer.abandon();
      throw error;
    }
    const op = addRecordCommit(kv.atomic(), prepared, plan);
    let result: Deno.KvCommitResult | Deno.KvCommitError;
    try {
      result = await op.commit();
    } catch (error) {
      // The reply may be lost although the commit applied: look before cleaning up.
      const published = await writer.abandon();
      if (published === undefined) throw error;
      result = { ok: true, versionstamp: published.versionstamp! };
    }
    if (result.ok) {
      await deleteReplaced(kv, plan.replaced);
      writer.reportDone();
      return result;
    }
    if (writer.versionstamp !== null) {
      const version = await kv.get(writer.versionKey);
      if (version.versionstamp !== writer.versionstamp) {
        await writer.abandon();
        throw new ConcurrentModificationError(
          `Cannot store ${keyText}: vacuum removed its version before the commit`,
        );
      }
    }
    if (requested !== undefined) {
      await writer.abandon();
      return result;
    }
    // Another writer committed first; the last writer wins, so try again.
    current = await kv.get(key);
  }
}
