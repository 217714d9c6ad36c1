/**
 * The write protocol behind `set`, `stage` and `remove` (FORMAT.md, "Writing a blob"):
 * validate, write the chunks, commit the record with its checks, retry a
 * lost race, and delete the replaced version or clean up after a failure.
 *
 * @module
 */

import type { AtomicLike, KvLike } from "./_kv_like.ts";
import { commitAndVerify } from "./_commit.ts";
import { ConcurrentModificationError, CorruptBlobError } from "./_errors.ts";
import { plainWriteFormat } from "./_kvp1.ts";
import { resolveWriteRecipients } from "./_key_input.ts";
import { versionKey } from "./_kv_keys.ts";
import { createSealedFormat } from "./_kvc1.ts";
import { checkExpireIn } from "./_expire_in.ts";
import { CHUNK_GRACE_MS } from "./_limits.ts";
import {
  decodeVersion,
  encodeMeta,
  recordMagic,
  VERSION_TOMBSTONE,
  type WriteFormat,
} from "./_record.ts";
import { applyMetadata, piecesOf, releaseSource, sourceOf } from "./_source.ts";
import { isExpired, summarizeRecord } from "./_summary.ts";
import { rememberVersion } from "./_version_hints.ts";
import { assertUserKey, describeKey, encodeKey } from "./_user_key.ts";
import { finishTombstone, tombstoneOf } from "./_versions.ts";
import {
  assertBeforeDeadline,
  expiryOptions,
  VersionWriter,
  type WriteTarget,
} from "./_chunk_writer.ts";
import type { SetOptions } from "./_types.ts";

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
  assertVersionstamp(options.versionstamp, `store ${keyText}`);
  // Chunks outlive the record by the grace period: their deadline must fit too.
  const expireIn = checkExpireIn(options.expireIn, keyText, CHUNK_GRACE_MS);
  return expireIn === undefined ? 0 : Date.now() + expireIn;
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

/** The format of a write: plain when no key is given, else sealed for its recipients. */
async function writeFormat(
  options: SetOptions,
  id: Uint8Array,
  keyText: string,
): Promise<WriteFormat> {
  const recipients = await resolveWriteRecipients(options, `store ${keyText}`);
  return recipients === undefined ? plainWriteFormat : createSealedFormat(recipients, id);
}

/** Whether a write names no key at all (and so is plain, with nothing to resolve). */
function isPlainWrite(options: SetOptions): boolean {
  return options.encryptionKey === undefined && options.recipients === undefined;
}

/** A version written but not yet published, with the record it will publish. */
export interface PreparedWrite {
  target: WriteTarget;
  writer: VersionWriter;
  record: Uint8Array;
  current: Deno.KvEntryMaybe<unknown>;
}

/**
 * Step 1 of the write protocol: starts reading the current record, validates
 * everything, then writes the chunks while that read runs. With `oneCommit` (`set`), a last batch
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
    // Read first, so the read overlaps all the work below (a write refused
    // for its options has only read).
    const current = kv.get(key);
    current.catch(() => {});
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
    const format = isPlainWrite(options)
      ? plainWriteFormat
      : await writeFormat(options, writer.id, keyText);
    pieces = piecesOf(source, format.chunkSize, options.signal, keyText);
    const record = await writer.write(pieces, format, meta, oneCommit);
    return { target, writer, record, current: await current };
  } catch (error) {
    await pieces?.return(undefined).catch(() => {});
    // Releases the caller's stream (a request body, say) whatever stopped the write.
    await releaseSource(source, error);
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
    // Abandoning looks at the record first: it keeps a version the record holds.
    const result = await commitAndVerify(op, async () => versionstampOf(await writer.abandon()));
    if (result.ok) {
      rememberVersion(kv, key, writer.chunked);
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

/** The versionstamp of a published record entry, if there is one. */
function versionstampOf(entry: Deno.KvEntryMaybe<unknown> | undefined): string | undefined {
  return entry?.versionstamp ?? undefined;
}

/**
 * A staged write (`stage`): the chunks are written, the record goes into the
 * caller's atomic, and the record, not a result the caller passes, decides
 * what is kept afterwards.
 */
export class StagedWrite {
  readonly #prepared: PreparedWrite;
  readonly #plan: CommitPlan;
  /** The atomics `addTo` was given, so `commit` adds the record once. */
  readonly #carrying = new WeakSet<AtomicLike>();
  /** The record entry that holds the staged version once settled, or null. */
  #settled: Deno.KvEntryMaybe<unknown> | null | undefined;

  constructor(prepared: PreparedWrite, requested: string | null | undefined) {
    this.#prepared = prepared;
    this.#plan = planCommit(prepared.current, requested);
  }

  /** Adds the record's checks and set to `op` (see `StagedBlob.addTo`). */
  addTo<Op extends AtomicLike>(op: Op): Op {
    assertBeforeDeadline(this.#prepared.target);
    this.#carrying.add(op);
    return addRecordCommit(op, this.#prepared, this.#plan);
  }

  /** Keeps or removes the staged version after the caller's commit (see `StagedBlob.complete`). */
  async complete(_resultOrError?: unknown): Promise<void> {
    await this.#settle();
  }

  /** Commits `op` with the record and settles the write (see `StagedBlob.commit`). */
  async commit(op: AtomicLike): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    // A settled write has already deleted or kept versions: committing it now would orphan them.
    if (this.#settled !== undefined) {
      throw new TypeError(
        `Cannot commit the staged blob at ${this.#prepared.target.keyText}: it was already committed or completed`,
      );
    }
    try {
      if (!this.#carrying.has(op)) this.addTo(op);
    } catch (error) {
      await this.#settle();
      throw error;
    }
    const result = await commitAndVerify(op, async () => versionstampOf(await this.#settle()));
    await this.#settle();
    return result;
  }

  /**
   * Once: if the record holds the staged version, deletes the replaced one
   * and returns the record entry; else removes the staged version.
   */
  async #settle(): Promise<Deno.KvEntryMaybe<unknown> | undefined> {
    if (this.#settled !== undefined) return this.#settled ?? undefined;
    // Only the record holding the staged version proves the commit: a
    // `{ ok: true }` from an atomic without the record would otherwise
    // delete the live blob's chunks.
    const published = await this.#prepared.writer.abandon();
    if (published !== undefined) {
      const { kv, key } = this.#prepared.target;
      rememberVersion(kv, key, this.#prepared.writer.chunked);
      await deleteReplaced(kv, this.#plan.replaced);
    }
    // Only now: a cleanup that threw may be settled again.
    this.#settled = published ?? null;
    return published;
  }
}

/**
 * `remove`'s protocol: deletes the record and tombstones its version in one
 * atomic (checking `requested`, else the versionstamp just read, and
 * retrying a lost race), then deletes the version's chunks.
 *
 * @throws {CorruptBlobError} if the entry is not a kvcrypt blob (it is left alone).
 */
export async function removeBlob(
  kv: KvLike,
  key: Deno.KvKey,
  requested: string | null | undefined,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  assertUserKey(key, "remove the blob");
  assertVersionstamp(requested, `remove ${describeKey(key)}`);
  for (;;) {
    const current = await kv.get(key);
    // Another kind of value at the key is the caller's, never deleted as a blob.
    if (current.versionstamp !== null && recordMagic(current.value) === undefined) {
      throw new CorruptBlobError(
        `Cannot remove ${describeKey(key)}: the entry is not a kvcrypt blob`,
      );
    }
    const expected = requested === undefined ? current.versionstamp : requested;
    const { replaced } = planCommit(current, undefined);
    const op = kv.atomic().check({ key, versionstamp: expected }).delete(key);
    const result = await commitAndVerify(
      tombstoneReplaced(op, replaced, key),
      () => removalApplied(kv, key, replaced),
    );
    if (result.ok) {
      rememberVersion(kv, key, null);
      await deleteReplaced(kv, replaced);
      return result;
    }
    if (requested !== undefined) return result;
  }
}

/**
 * After a removal whose commit threw: the versionstamp it committed at if it
 * applied (the record is gone and its version carries the tombstone that
 * same atomic wrote), else undefined.
 */
async function removalApplied(
  kv: KvLike,
  key: Deno.KvKey,
  replaced: ReplacedVersion | undefined,
): Promise<string | undefined> {
  if (replaced === undefined) return undefined;
  const [record, version] = await kv.getMany([key, versionKey(replaced.id)]);
  if (record!.versionstamp !== null) return undefined;
  const state = decodeVersion(version!.value)?.state;
  return state === VERSION_TOMBSTONE ? version!.versionstamp! : undefined;
}
