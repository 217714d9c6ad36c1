/**
 * `cryptoKv`: a Deno.Kv look-alike whose values are sealed as KVV1 (see
 * `_kvv1.ts`). The public types and their documentation are here; crypto.ts
 * exports them with the `cryptoKv` factory.
 *
 * @module
 */

import type { KvLike, KvListIteratorLike } from "./_kv_like.ts";
import { resolveRecipients } from "./_key_input.ts";
import { suiteOf } from "./_aes_gcm.ts";
import {
  assertValueFits,
  deserializeValue,
  openValue,
  parseValue,
  sealValue,
  serializeValue,
  VALUE_MAGIC,
} from "./_kvv1.ts";
import { INTERNAL_PREFIX } from "./_kv_keys.ts";
import { KV_GET_MANY_MAX } from "./_limits.ts";
import { assertRingKids, noRotation, reportRotation, type RotateOutcome } from "./_rotate.ts";
import { checkExpireIn } from "./_expire_in.ts";
import { isKvU64 } from "./_runtime.ts";
import { isExpired } from "./_summary.ts";
import { assertUserKey, describeKey } from "./_user_key.ts";
import { isKeyWrapper, type KeyEntry } from "./_keyring.ts";
import type { EncryptionKey, RotateResult } from "./_types.ts";

/** Options of {@linkcode CryptoKv.set} and {@linkcode CryptoAtomicOperation.set}. */
export interface CryptoKvSetOptions {
  /**
   * Milliseconds after which the value expires: it sets both Deno KV's
   * `expireIn` and the deadline sealed (authenticated) in the value, which
   * readers check, since Deno KV purges expired entries late.
   */
  expireIn?: number;
}

/** Options of {@linkcode CryptoKv.get} and {@linkcode CryptoKv.getMany}. */
export interface CryptoKvGetOptions {
  /**
   * Deno KV's read consistency.
   *
   * @default {"strong"}
   */
  consistency?: Deno.KvConsistencyLevel;
}

/**
 * The iterator {@linkcode CryptoKv.list} returns: decrypted entries, and the
 * cursor to resume after the last one.
 */
export interface CryptoKvListIterator<T> extends AsyncIterableIterator<Deno.KvEntry<T>> {
  /** The cursor of the current position, for the `cursor` option of a later `list`. */
  readonly cursor: string;
}

/**
 * An atomic operation over encrypted values: checks, sets and deletes
 * committed all or nothing. Values are serialized when `set` is called and
 * sealed when `commit` runs. There is no `sum`, `min`, `max` or `enqueue`:
 * they would need the plain values.
 */
export interface CryptoAtomicOperation {
  /**
   * Adds checks: the commit fails unless each key's versionstamp is the one
   * given (`null`: no live value; a value past its expiry counts as absent).
   *
   * @param checks Keys and the versionstamps they must have.
   * @returns This operation, for chaining.
   * @throws {TypeError} When a key is not a valid user key.
   */
  check(...checks: Deno.AtomicCheck[]): this;
  /**
   * Adds an encrypted set. The value is serialized now and sealed at commit.
   *
   * @param key The key.
   * @param value Any value V8's structured clone accepts.
   * @param options `expireIn` in milliseconds.
   * @returns This operation, for chaining.
   * @throws {TypeError} When the key is invalid or the value cannot be serialized.
   * @throws {RangeError} When `expireIn` is not a positive number, or later than Deno KV accepts.
   */
  set(key: Deno.KvKey, value: unknown, options?: CryptoKvSetOptions): this;
  /**
   * Adds a delete.
   *
   * @param key The key.
   * @returns This operation, for chaining.
   * @throws {TypeError} When the key is invalid.
   */
  delete(key: Deno.KvKey): this;
  /**
   * Seals the values and commits everything in one Deno KV atomic operation.
   *
   * @returns `{ ok: true, versionstamp }`, or `{ ok: false }` when a check failed (nothing written).
   * @throws {TypeError} When the encryption key is not usable (see `cryptoKv`).
   * @throws {RangeError} When a value is too large for one KV entry (nothing written).
   */
  commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError>;
}

/**
 * Encrypted structured values in Deno KV, with the shape of `Deno.Kv`: every
 * value is V8-serialized and sealed with AES-GCM under the key ring's current
 * key, bound to its KV key; reads authenticate and decrypt. Make one with
 * `cryptoKv(kv, encryptionKey)`.
 */
export interface CryptoKv {
  /**
   * Reads and decrypts one value.
   *
   * @param key The key.
   * @param options `consistency`.
   * @returns The entry; `value` and `versionstamp` are `null` when the key is
   * absent or its value is past its expiry.
   * @throws {DecryptionError} When the entry is not an encrypted value, or no
   * key opens it (wrong key, or the value was changed or moved from another key).
   * @throws {TypeError} When the key is invalid or the encryption key is not usable.
   */
  get<T = unknown>(key: Deno.KvKey, options?: CryptoKvGetOptions): Promise<Deno.KvEntryMaybe<T>>;
  /**
   * Reads and decrypts up to 10 values in one request.
   *
   * @param keys The keys (at most 10).
   * @param options `consistency`.
   * @returns One entry per key, in order, as {@linkcode CryptoKv.get} returns them.
   * @throws {DecryptionError} When any entry does not decrypt.
   * @throws {TypeError} When a key is invalid or the encryption key is not usable.
   * @throws {RangeError} When more than 10 keys are given.
   */
  getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
    options?: CryptoKvGetOptions,
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }>;
  /**
   * Encrypts and stores a value. The value is authenticated together with
   * its key, its key id and its deadline; a set without `expireIn` stores a
   * value that never expires (an earlier deadline is not kept).
   *
   * @param key The key.
   * @param value Any value V8's structured clone accepts.
   * @param options `expireIn` in milliseconds.
   * @returns The commit result.
   * @throws {TypeError} When the key is invalid, the value cannot be
   * serialized, or the encryption key is not usable.
   * @throws {RangeError} When the sealed value would not fit one KV entry
   * (store it as a blob with `set()` from the blob module), or `expireIn` is
   * not a positive number or later than Deno KV accepts.
   */
  set(key: Deno.KvKey, value: unknown, options?: CryptoKvSetOptions): Promise<Deno.KvCommitResult>;
  /**
   * Deletes a value.
   *
   * @param key The key.
   * @returns Nothing, once deleted.
   * @throws {TypeError} When the key is invalid.
   */
  delete(key: Deno.KvKey): Promise<void>;
  /**
   * Lists and decrypts the values under a selector, skipping values past
   * their expiry.
   *
   * @param selector `prefix`, `start` and/or `end`, as for `Deno.Kv.list`.
   * @param options Deno KV's list options (`limit`, `cursor`, `reverse`, `consistency`, `batchSize`).
   * @returns An async iterator of decrypted entries.
   * @throws {DecryptionError} While iterating, when an entry does not decrypt
   * (a plain value or a blob record under the selector included).
   */
  list<T = unknown>(
    selector: Deno.KvListSelector,
    options?: Deno.KvListOptions,
  ): CryptoKvListIterator<T>;
  /**
   * Watches up to 10 keys: every snapshot is decrypted as by
   * {@linkcode CryptoKv.getMany}; a snapshot that does not decrypt errors the
   * stream with a `DecryptionError`. Cancel the stream to stop watching.
   *
   * @param keys The keys (at most 10).
   * @param options `raw`, as for `Deno.Kv.watch`.
   * @returns A stream of decrypted snapshots.
   * @throws {TypeError} When a key is invalid.
   * @throws {RangeError} When more than 10 keys are given.
   */
  watch<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
    options?: {
      /**
       * As for `Deno.Kv.watch`: emit on every mutation of a watched key, even
       * one that changes nothing observable, instead of only on changes.
       *
       * @default {false}
       */
      raw?: boolean;
    },
  ): ReadableStream<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }>;
  /**
   * Starts an atomic operation over encrypted values.
   *
   * @returns A new operation; nothing happens until `commit()`.
   */
  atomic(): CryptoAtomicOperation;
  /**
   * Re-encrypts every value under a selector that was not written under the
   * key ring's current key, keeping its deadline. Each value is written with
   * a versionstamp check, so a concurrent write wins (counted as skipped);
   * running it again after an abort or a crash finishes the job.
   *
   * @param selector Which keys to look at, as for `Deno.Kv.list`.
   * @param options `signal` to abort (rejects with its reason), `onProgress`
   * for the counts after each value.
   * @returns How many values were rotated, unchanged, skipped (no key of the
   * ring matches, or a concurrent write) and failed (a value the ring names
   * that does not open).
   * @throws {TypeError} When the encryption key is not usable.
   */
  rotate(selector: Deno.KvListSelector, options?: CryptoKvRotateOptions): Promise<RotateResult>;
}

/** Options of {@linkcode CryptoKv.rotate}. */
export interface CryptoKvRotateOptions {
  /** Aborts the run; it rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Called with the counts so far after each value; what it throws is ignored. */
  onProgress?: ((progress: RotateResult) => void) | undefined;
}

/** The message for an array of several recipients. */
const SEVERAL_RECIPIENTS =
  "Cannot use several recipients for cryptoKv values; pass one key or one key ring";

/** The message for a key ring holding a KeyWrapper. */
const NO_WRAPPERS =
  "Cannot use a KeyWrapper for cryptoKv values: each value is sealed under a local key. " +
  "Keep large or shared data in blobs (they take wrappers), or unwrap a data key with your wrapper once at start-up and pass that";

/** The writing key and every key a reader tries. */
interface ValueKeys {
  writer: KeyEntry;
  readers: readonly KeyEntry[];
}

/** Resolves one key ring: its current key writes, all its keys read. */
async function resolveValueKeys(input: EncryptionKey): Promise<ValueKeys> {
  // Values have no stanzas: a second recipient could not read what the first key seals.
  if (Array.isArray(input) && input.length > 1) throw new TypeError(SEVERAL_RECIPIENTS);
  const rings = await resolveRecipients(input);
  const ring = rings[0];
  if (ring === undefined || rings.length !== 1) throw new TypeError(SEVERAL_RECIPIENTS);
  const keys = [...ring];
  // A KVV1 value is sealed under the key itself: a key held elsewhere cannot seal it.
  if (keys.some(isKeyWrapper)) throw new TypeError(NO_WRAPPERS);
  return { writer: ring.current as KeyEntry, readers: keys as KeyEntry[] };
}

/** An absent entry, as Deno KV returns it. */
function absent(key: Deno.KvKey): Deno.KvEntryMaybe<never> {
  return { key, value: null, versionstamp: null };
}

/** The sealed deadline for `expireIn` (whole milliseconds) from now; 0 = none. */
function deadline(expireIn: number | undefined): number {
  return expireIn === undefined ? 0 : Date.now() + expireIn;
}

/** Deno KV's set options for `expireIn`. */
function kvSetOptions(expireIn: number | undefined): { expireIn?: number } {
  return expireIn === undefined ? {} : { expireIn };
}

/** Serializes a value for `key`, refusing what cannot be encrypted meaningfully. */
function serializeFor(key: Deno.KvKey, value: unknown): Uint8Array {
  const what = describeKey(key);
  if (isKvU64(value)) {
    throw new TypeError(
      `Cannot store ${what}: a Deno.KvU64 cannot be encrypted (sum, min and max need the plain number); store a bigint`,
    );
  }
  return serializeValue(value, what);
}

/** Checks a list of keys for getMany and watch. */
function checkKeys(keys: readonly Deno.KvKey[], action: string): void {
  if (!Array.isArray(keys)) throw new TypeError(`Cannot ${action}: keys must be an array of keys`);
  // Deno KV's own limit, checked here to fail with a message that says what to do.
  if (keys.length > KV_GET_MANY_MAX) {
    throw new RangeError(
      `Cannot ${action} ${keys.length} keys at once: at most ${KV_GET_MANY_MAX}; split the call`,
    );
  }
  for (const key of keys) assertUserKey(key, `${action} a value`);
}

/** Seals and opens values with one key ring, resolved on first use. */
class ValueCodec {
  readonly #encryptionKey: EncryptionKey;
  #keys: Promise<ValueKeys> | undefined;

  constructor(encryptionKey: EncryptionKey) {
    this.#encryptionKey = encryptionKey;
  }

  /** The keys, imported once; a failed import is retried on the next call. */
  keys(): Promise<ValueKeys> {
    if (this.#keys === undefined) {
      const resolving = resolveValueKeys(this.#encryptionKey);
      this.#keys = resolving;
      resolving.catch(() => {
        if (this.#keys === resolving) this.#keys = undefined;
      });
    }
    return this.#keys;
  }

  /** Seals serialized bytes for `key` with the current key. */
  async seal(key: Deno.KvKey, plaintext: Uint8Array, expiresAt: number): Promise<Uint8Array> {
    const { writer } = await this.keys();
    assertValueFits(writer.kid, plaintext, describeKey(key));
    return await sealValue(writer, key, plaintext, expiresAt);
  }

  /** Authenticates and decrypts one entry; absent or expired entries read as absent. */
  async open<T>(entry: Deno.KvEntryMaybe<unknown>): Promise<Deno.KvEntryMaybe<T>> {
    // Resolved even for an absent key, so an unusable key fails on first use, not on first hit.
    const { readers } = await this.keys();
    if (entry.versionstamp === null) return absent(entry.key);
    const what = describeKey(entry.key);
    const parsed = parseValue(entry.value, what);
    const plaintext = await openValue(parsed, entry.key, readers, what);
    // Checked after authentication, so the deadline itself cannot be forged or stripped.
    if (isExpired(parsed)) return absent(entry.key);
    const value = deserializeValue(plaintext, what) as T;
    return { key: entry.key, value, versionstamp: entry.versionstamp };
  }

  /**
   * The versionstamp an expired, not yet purged value really has, so a
   * `check(key, null)` passes over it as it passes over an absent key.
   */
  async presentVersionstamp(entry: Deno.KvEntryMaybe<unknown>): Promise<string | null> {
    if (entry.versionstamp === null) return null;
    try {
      const opened = await this.open(entry);
      return opened.versionstamp === null ? entry.versionstamp : null;
    } catch {
      // A value that does not decrypt is present: the null check must fail.
      return null;
    }
  }
}

/** The implementation of {@linkcode CryptoKv}. */
export class SealedKv implements CryptoKv {
  readonly #kv: KvLike;
  readonly #codec: ValueCodec;

  constructor(kv: KvLike, encryptionKey: EncryptionKey) {
    if (typeof kv !== "object" || kv === null || typeof kv.atomic !== "function") {
      throw new TypeError("Cannot use cryptoKv: kv must be a Deno.Kv");
    }
    this.#kv = kv;
    this.#codec = new ValueCodec(encryptionKey);
  }

  async get<T = unknown>(
    key: Deno.KvKey,
    options: CryptoKvGetOptions = {},
  ): Promise<Deno.KvEntryMaybe<T>> {
    assertUserKey(key, "read a value");
    return await this.#codec.open<T>(await this.#kv.get(key, options));
  }

  async getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
    options: CryptoKvGetOptions = {},
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }> {
    checkKeys(keys, "read");
    const entries = await this.#kv.getMany<unknown[]>(keys, options);
    const opened = await Promise.all(entries.map((entry) => this.#codec.open(entry)));
    return opened as { [K in keyof T]: Deno.KvEntryMaybe<T[K]> };
  }

  async set(
    key: Deno.KvKey,
    value: unknown,
    options: CryptoKvSetOptions = {},
  ): Promise<Deno.KvCommitResult> {
    assertUserKey(key, "store a value");
    const expireIn = checkExpireIn(options.expireIn, describeKey(key));
    const plaintext = serializeFor(key, value);
    const sealed = await this.#codec.seal(key, plaintext, deadline(expireIn));
    return await this.#kv.set(key, sealed, kvSetOptions(expireIn));
  }

  async delete(key: Deno.KvKey): Promise<void> {
    assertUserKey(key, "delete a value");
    await this.#codec.keys(); // an unusable key fails on every call, deletes included
    await this.#kv.delete(key);
  }

  list<T = unknown>(
    selector: Deno.KvListSelector,
    options: Deno.KvListOptions = {},
  ): CryptoKvListIterator<T> {
    return new OpeningListIterator<T>(this.#kv.list(selector, options), this.#codec);
  }

  watch<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
    options: { raw?: boolean } = {},
  ): ReadableStream<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }> {
    checkKeys(keys, "watch");
    const codec = this.#codec;
    return this.#kv.watch<unknown[]>(keys, options).pipeThrough(
      new TransformStream<
        Deno.KvEntryMaybe<unknown>[],
        { [K in keyof T]: Deno.KvEntryMaybe<T[K]> }
      >({
        async transform(snapshot, controller) {
          const opened = await Promise.all(snapshot.map((entry) => codec.open(entry)));
          controller.enqueue(opened as { [K in keyof T]: Deno.KvEntryMaybe<T[K]> });
        },
      }),
    );
  }

  atomic(): CryptoAtomicOperation {
    return new SealedAtomicOperation(this.#kv, this.#codec);
  }

  async rotate(
    selector: Deno.KvListSelector,
    options: CryptoKvRotateOptions = {},
  ): Promise<RotateResult> {
    const keys = await this.#codec.keys();
    assertRingKids(keys.readers.map((reader) => reader.kid), "values");
    const counts = noRotation();
    options.signal?.throwIfAborted();
    for await (const entry of this.#kv.list(selector, { consistency: "strong" })) {
      options.signal?.throwIfAborted();
      // kvcrypt's own chunk entries can hold any bytes: only user keys hold values.
      if (entry.key[0] === INTERNAL_PREFIX || !isSealedValue(entry.value)) continue;
      counts[await this.#rotateValue(entry, keys)]++;
      reportRotation(options.onProgress, counts);
    }
    return counts;
  }

  /** Seals one value again under the current key, checking its versionstamp. */
  async #rotateValue(entry: Deno.KvEntry<unknown>, keys: ValueKeys): Promise<RotateOutcome> {
    const what = describeKey(entry.key);
    let plaintext: Uint8Array;
    let expiresAt: number;
    try {
      const parsed = parseValue(entry.value, what);
      if (parsed.kid === keys.writer.kid && parsed.suite === suiteOf(keys.writer.key)) {
        return "unchanged";
      }
      if (!keys.readers.some((reader) => reader.kid === parsed.kid)) return "skipped";
      plaintext = await openValue(parsed, entry.key, keys.readers, what);
      if (isExpired(parsed)) return "unchanged";
      expiresAt = parsed.expiresAt;
    } catch {
      return "failed";
    }
    const sealed = await sealValue(keys.writer, entry.key, plaintext, expiresAt);
    // The same deadline, sealed and in Deno KV: rotation never changes a value's life.
    const expireIn = expiresAt === 0 ? undefined : Math.max(1, expiresAt - Date.now());
    const result = await this.#kv.atomic().check(entry).set(
      entry.key,
      sealed,
      kvSetOptions(expireIn),
    )
      .commit();
    return result.ok ? "rotated" : "skipped";
  }
}

/** Whether a KV value is a KVV1 value (the only kind `rotate` touches). */
function isSealedValue(value: unknown): boolean {
  return value instanceof Uint8Array && value.length >= VALUE_MAGIC.length &&
    VALUE_MAGIC.every((byte, i) => value[i] === byte);
}

/** Decrypts a `Deno.Kv.list` iterator entry by entry, skipping expired values. */
class OpeningListIterator<T> implements CryptoKvListIterator<T> {
  readonly #inner: KvListIteratorLike<unknown>;
  readonly #codec: ValueCodec;

  constructor(inner: KvListIteratorLike<unknown>, codec: ValueCodec) {
    this.#inner = inner;
    this.#codec = codec;
  }

  get cursor(): string {
    return this.#inner.cursor;
  }

  async next(): Promise<IteratorResult<Deno.KvEntry<T>, undefined>> {
    await this.#codec.keys(); // an unusable key fails even when nothing is listed
    for (;;) {
      const result = await this.#inner.next();
      if (result.done) return { done: true, value: undefined };
      const opened = await this.#codec.open<T>(result.value);
      if (opened.versionstamp !== null) return { done: false, value: opened };
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** One queued mutation, in call order. */
type Mutation =
  | { kind: "check"; check: Deno.AtomicCheck }
  | { kind: "set"; key: Deno.KvKey; plaintext: Uint8Array; expireIn: number | undefined }
  | { kind: "delete"; key: Deno.KvKey };

/** The implementation of {@linkcode CryptoAtomicOperation}. */
class SealedAtomicOperation implements CryptoAtomicOperation {
  readonly #kv: KvLike;
  readonly #codec: ValueCodec;
  readonly #mutations: Mutation[] = [];

  constructor(kv: KvLike, codec: ValueCodec) {
    this.#kv = kv;
    this.#codec = codec;
  }

  check(...checks: Deno.AtomicCheck[]): this {
    for (const check of checks) {
      assertUserKey(check?.key, "check a value");
      this.#mutations.push({ kind: "check", check });
    }
    return this;
  }

  set(key: Deno.KvKey, value: unknown, options: CryptoKvSetOptions = {}): this {
    assertUserKey(key, "store a value");
    const expireIn = checkExpireIn(options.expireIn, describeKey(key));
    this.#mutations.push({ kind: "set", key, plaintext: serializeFor(key, value), expireIn });
    return this;
  }

  delete(key: Deno.KvKey): this {
    assertUserKey(key, "delete a value");
    this.#mutations.push({ kind: "delete", key });
    return this;
  }

  async commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    const mutations = [...this.#mutations];
    await this.#codec.keys();
    const [sealed, checks] = await Promise.all([
      Promise.all(
        mutations.map((m) =>
          m.kind === "set" ? this.#codec.seal(m.key, m.plaintext, deadline(m.expireIn)) : undefined
        ),
      ),
      this.#resolveChecks(mutations),
    ]);
    const op = this.#kv.atomic();
    mutations.forEach((m, i) => {
      if (m.kind === "check") op.check(checks.get(m) ?? m.check);
      else if (m.kind === "delete") op.delete(m.key);
      else op.set(m.key, sealed[i]!, kvSetOptions(m.expireIn));
    });
    return await op.commit();
  }

  /**
   * Replaces `check(key, null)` by the real versionstamp of a value that is
   * past its expiry but not yet purged: such a value reads as absent, so a
   * create-only check must pass over it (a concurrent write still fails it).
   */
  async #resolveChecks(mutations: readonly Mutation[]): Promise<Map<Mutation, Deno.AtomicCheck>> {
    const nullChecks = mutations.filter((m): m is Extract<Mutation, { kind: "check" }> =>
      m.kind === "check" && m.check.versionstamp === null
    );
    const resolved = new Map<Mutation, Deno.AtomicCheck>();
    for (let i = 0; i < nullChecks.length; i += KV_GET_MANY_MAX) {
      const batch = nullChecks.slice(i, i + KV_GET_MANY_MAX);
      const entries = await this.#kv.getMany<unknown[]>(batch.map((m) => m.check.key));
      const stamps = await Promise.all(
        entries.map((entry) => this.#codec.presentVersionstamp(entry)),
      );
      batch.forEach((m, j) => {
        const versionstamp = stamps[j] ?? null;
        if (versionstamp !== null) resolved.set(m, { key: m.check.key, versionstamp });
      });
    }
    return resolved;
  }
}
