/**
 * One call that moves blobs written by kv-toolbox 0.30 (kitsonk/kv-toolbox,
 * plain `set` or `CryptoKv.setBlob`) into kvcrypt blobs at the same keys,
 * with the same bytes, kind, type, name and lastModified.
 *
 * The move is crash-safe and can simply be run again: each blob's kvcrypt
 * record commits in the same atomic operation that deletes its kv-toolbox
 * metadata, so at every moment the blob is readable in exactly one of the
 * two formats; its kv-toolbox parts are deleted after that commit, and a run
 * that finds parts left over under a kvcrypt blob deletes them.
 *
 * @example Move a folder of files
 * ```ts
 * import assert from "node:assert/strict";
 * import { getAsBlob } from "@kvcrypt/kvcrypt/blob";
 * import { migrateKvToolbox } from "@kvcrypt/kvcrypt/migrate";
 *
 * const kv = await Deno.openKv(":memory:");
 * // What kv-toolbox 0.30's set(kv, ["files", "a.txt"], file) leaves in the store:
 * const meta = { kind: "file", type: "text/plain", name: "a.txt", lastModified: 1, size: 5 };
 * await kv.set(["files", "a.txt", "__kv_toolbox_blob__", 1], new TextEncoder().encode("hello"));
 * await kv.set(["files", "a.txt", "__kv_toolbox_meta__"], meta);
 *
 * const result = await migrateKvToolbox(kv, { prefix: ["files"] });
 * assert.deepEqual(result, { migrated: 1, skipped: 0, failed: 0 });
 * const file = await getAsBlob(kv, ["files", "a.txt"]);
 * assert.ok(file instanceof File && file.name === "a.txt");
 * assert.equal(await file.text(), "hello");
 * kv.close();
 * ```
 *
 * @module
 */

import type { KvLike } from "./_kv_like.ts";
import { stage } from "./blob.ts";
import { isRecord } from "./_guards.ts";
import { resolveWriteRecipients, type WriteKeyOptions } from "./_key_input.ts";
import { importKvToolboxKey, openKvToolboxBlob } from "./_kv_toolbox_crypto.ts";
import {
  deleteParts,
  type KvToolboxMeta,
  metaKeyOf,
  parseKvToolboxMeta,
  partsStream,
  type PartTally,
  readAllParts,
} from "./_kv_toolbox_layout.ts";
import { scanKvToolbox } from "./_kv_toolbox_scan.ts";
import { lazyBlob } from "./_lazy_blob.ts";
import { recordMagic } from "./_record.ts";
import { singleChunkStream } from "./_source.ts";
import type { BlobValue, KeyMaterial } from "./_types.ts";
export type { EncryptionKey, KeyMaterial } from "./_types.ts";

/** Options of {@linkcode migrateKvToolbox}. */
export interface MigrateOptions {
  /**
   * The key kv-toolbox's `CryptoKv` encrypted with: its hex string
   * (`generateKey()` output) or its raw bytes, 128, 192 or 256 bits. Without
   * it, encrypted kv-toolbox blobs are skipped.
   */
  kvToolboxKey?: string | Uint8Array | undefined;
  /**
   * The kvcrypt key the blobs kv-toolbox stored encrypted are encrypted with:
   * one key or key ring, as `set` takes it. Blobs kv-toolbox stored in
   * plaintext stay plaintext unless `encryptPlain` is set.
   */
  encryptionKey?: KeyMaterial | undefined;
  /**
   * Several recipients to encrypt for instead of `encryptionKey`, as `set`
   * takes them: one stanza per entry. Not together with `encryptionKey`.
   */
  recipients?: readonly KeyMaterial[] | undefined;
  /**
   * Also encrypt, under `encryptionKey` (or for `recipients`), the blobs kv-toolbox stored in plaintext.
   *
   * @default {false}
   */
  encryptPlain?: boolean | undefined;
  /**
   * Store the blobs kv-toolbox stored encrypted as **plaintext** kvcrypt
   * blobs. Without this (and without `encryptionKey` or `recipients`) they are skipped: an
   * encrypted blob is never decrypted into plaintext by accident.
   *
   * @default {false}
   */
  decryptToPlaintext?: boolean | undefined;
  /** Stops the migration between blobs or inside one; it rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Called after every blob with the counts so far and what happened to it; what it throws is ignored. */
  onProgress?: ((progress: MigrateProgress) => void) | undefined;
}

/** What {@linkcode migrateKvToolbox} did. */
export interface MigrateResult {
  /** Blobs now stored by kvcrypt, kv-toolbox entries removed (leftovers of an earlier run included). */
  migrated: number;
  /** Encrypted blobs left as they are: no `kvToolboxKey`, or nowhere allowed to put them. */
  skipped: number;
  /** Blobs left as they are because they could not be moved (see `onProgress`). */
  failed: number;
}

/** One blob's outcome, with the counts so far. */
export interface MigrateProgress extends MigrateResult {
  /** The blob's key. */
  key: Deno.KvKey;
  /** What happened to it. */
  outcome: "migrated" | "skipped" | "failed";
  /** Why it was skipped or failed. */
  reason?: string;
  /** The error a failed blob ran into. */
  error?: unknown;
}

/** The validated options. */
interface Plan {
  kv: KvLike;
  openKey: CryptoKey | undefined;
  /** Whom migrated blobs are encrypted for; undefined when no key is given. */
  writeKeys: WriteKeyOptions | undefined;
  encryptPlain: boolean;
  decryptToPlaintext: boolean;
  signal: AbortSignal | undefined;
}

type Outcome = Pick<MigrateProgress, "outcome" | "reason" | "error">;

const CANNOT = "Cannot migrate from kv-toolbox";

function optionalBoolean(options: MigrateOptions, name: keyof MigrateOptions): boolean {
  const value: unknown = options[name];
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(`${CANNOT}: ${name} must be a boolean`);
  }
  return value === true;
}

/** Checks the three arguments' types. */
function assertArguments(kv: unknown, selector: unknown, options: unknown): void {
  if (!isRecord(kv) || typeof kv.list !== "function" || typeof kv.atomic !== "function") {
    throw new TypeError(`${CANNOT}: kv must be a Deno.Kv (or a store of its shape)`);
  }
  if (!isRecord(selector) || !(Array.isArray(selector.prefix) || Array.isArray(selector.start))) {
    throw new TypeError(`${CANNOT}: the selector must be a Deno.KvListSelector`);
  }
  if (!isRecord(options)) throw new TypeError(`${CANNOT}: options must be an object`);
}

/** Checks the options' types and combinations. */
function assertOptions(options: MigrateOptions): void {
  const { signal, onProgress } = options;
  const encrypts = options.encryptionKey !== undefined || options.recipients !== undefined;
  const encryptPlain = optionalBoolean(options, "encryptPlain");
  const decryptToPlaintext = optionalBoolean(options, "decryptToPlaintext");
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`${CANNOT}: signal must be an AbortSignal`);
  }
  if (onProgress !== undefined && typeof onProgress !== "function") {
    throw new TypeError(`${CANNOT}: onProgress must be a function`);
  }
  if (decryptToPlaintext && encrypts) {
    throw new TypeError(
      `${CANNOT}: decryptToPlaintext and encryptionKey (or recipients) exclude each other`,
    );
  }
  if (encryptPlain && !encrypts) {
    throw new TypeError(`${CANNOT}: encryptPlain needs an encryptionKey (or recipients)`);
  }
}

/** Checks the arguments and imports the keys, before anything is read. */
async function planOf(kv: KvLike, selector: unknown, options: MigrateOptions): Promise<Plan> {
  assertArguments(kv, selector, options);
  assertOptions(options);
  const { kvToolboxKey, encryptionKey, recipients, signal } = options;
  // A bad key fails the call at once instead of every blob in turn.
  const encrypts = await resolveWriteRecipients(options, "migrate from kv-toolbox") !== undefined;
  const openKey = kvToolboxKey === undefined ? undefined : await importKvToolboxKey(kvToolboxKey);
  signal?.throwIfAborted();
  return {
    kv,
    openKey,
    writeKeys: encrypts ? { encryptionKey, recipients } : undefined,
    encryptPlain: options.encryptPlain === true,
    decryptToPlaintext: options.decryptToPlaintext === true,
    signal,
  };
}

/** Why an encrypted blob is not migrated under these options, if it is not. */
function skipReason(plan: Plan, meta: KvToolboxMeta): string | undefined {
  if (!meta.encrypted) return undefined;
  if (plan.openKey === undefined) return "it is encrypted and no kvToolboxKey was given";
  // Stops an encrypted blob from being stored as plaintext without the caller asking for it.
  if (plan.writeKeys === undefined && !plan.decryptToPlaintext) {
    return "it is encrypted and there is no encryptionKey or recipients (or decryptToPlaintext) to store it with";
  }
  return undefined;
}

/**
 * The value handed to `stage`: a plain blob streams from its parts; an
 * encrypted one is a single AES-GCM message, opened whole (Web Crypto
 * authenticates only whole messages) before any byte is written.
 */
async function sourceOf(
  plan: Plan,
  key: Deno.KvKey,
  meta: KvToolboxMeta,
  tally: PartTally,
): Promise<BlobValue> {
  let open: () => ReadableStream<Uint8Array>;
  let size = meta.size;
  if (meta.encrypted) {
    const stored = await readAllParts(plan.kv, key, meta, tally);
    const bytes = await openKvToolboxBlob(plan.openKey!, stored, key);
    if (meta.kind === "buffer") return bytes;
    open = () => singleChunkStream(bytes);
    size = bytes.length;
  } else {
    open = () => partsStream(plan.kv, key, meta, tally);
    if (meta.kind === "buffer") return open();
  }
  const { type, name, lastModified } = meta;
  return lazyBlob({ kind: meta.kind as "blob" | "file", type, name, lastModified, size }, open);
}

/**
 * Commits the staged kvcrypt record and deletes the kv-toolbox metadata in
 * one atomic, which also checks that the metadata is unchanged.
 *
 * @returns Whether it committed (false: the key or the metadata changed).
 */
async function swap(
  plan: Plan,
  key: Deno.KvKey,
  metaEntry: Deno.KvEntry<unknown>,
  value: BlobValue,
  encrypt: boolean,
): Promise<boolean> {
  const { kv, signal } = plan;
  const staged = await stage(kv, key, value, {
    versionstamp: null,
    signal,
    ...(encrypt ? plan.writeKeys : {}),
  });
  // Checking the metadata stops a kv-toolbox blob rewritten meanwhile from being deleted unmoved.
  const op = kv.atomic().check(metaEntry).delete(metaKeyOf(key));
  return (await staged.commit(op)).ok;
}

/** Moves one blob whose metadata entry the scan found. */
async function migrateBlob(
  plan: Plan,
  key: Deno.KvKey,
  metaEntry: Deno.KvEntry<unknown>,
): Promise<Outcome> {
  const meta = parseKvToolboxMeta(key, metaEntry.value);
  const skip = skipReason(plan, meta);
  if (skip !== undefined) return { outcome: "skipped", reason: skip };
  if ((await plan.kv.get(key)).versionstamp !== null) {
    // Stops the migration from overwriting a value stored at the blob's own key.
    return { outcome: "failed", reason: "its key already holds a value; move or remove it first" };
  }
  const tally: PartTally = { parts: 0 };
  const value = await sourceOf(plan, key, meta, tally);
  const encrypt = meta.encrypted ? plan.writeKeys !== undefined : plan.encryptPlain;
  if (!await swap(plan, key, metaEntry, value, encrypt)) {
    return { outcome: "failed", reason: "it or its key changed during the migration; run again" };
  }
  if (!await deleteParts(plan.kv, key, tally.parts)) {
    const reason = "moved, but kv-toolbox wrote a new blob at its key meanwhile: both are kept";
    return { outcome: "failed", reason };
  }
  return { outcome: "migrated" };
}

/**
 * Parts without metadata under a kvcrypt blob: what a run interrupted after
 * its commit leaves. Deletes them; anything else is left alone.
 */
async function finishLeftovers(plan: Plan, key: Deno.KvKey): Promise<Outcome | undefined> {
  const [record, meta] = await plan.kv.getMany([key, metaKeyOf(key)]);
  // Its metadata follows in the scan, or the parts are not a migrated blob's leftovers.
  if (meta.versionstamp !== null || recordMagic(record.value) === undefined) return undefined;
  if (!await deleteParts(plan.kv, key, 0)) return undefined;
  return { outcome: "migrated", reason: "removed the kv-toolbox parts an earlier run left" };
}

function report(
  onProgress: MigrateOptions["onProgress"],
  counts: MigrateResult,
  key: Deno.KvKey,
  outcome: Outcome,
): void {
  try {
    onProgress?.({ ...counts, key, ...outcome });
  } catch {
    // The caller's bug: the migration goes on.
  }
}

/**
 * Moves every kv-toolbox 0.30 blob under `selector` into a kvcrypt blob at
 * the same key: same bytes, kind (bytes, Blob or File), type, name and
 * lastModified. Plain kv-toolbox blobs are streamed part by part; an
 * encrypted one (kv-toolbox's `CryptoKv`) is opened with `kvToolboxKey` and
 * stored encrypted under `encryptionKey` (or for `recipients`), and held in memory twice (its
 * ciphertext and plaintext) while it moves, since kv-toolbox encrypts a
 * value as one AES-GCM message.
 *
 * Safe to interrupt and to run again: a blob is readable at every moment,
 * in exactly one of the two formats; a second run finishes what the first
 * left and migrates nothing twice. Entries that are not kv-toolbox blobs
 * are not touched. A blob is left as it was, and counted, when it is
 * encrypted and cannot or may not be moved (`skipped`: no `kvToolboxKey`,
 * or none of `encryptionKey`, `recipients` and `decryptToPlaintext`), or when moving it
 * fails (`failed`: a wrong `kvToolboxKey`, damaged parts, a value already at
 * its key, a concurrent change, a store error); `onProgress` says which and
 * why. Run it while nothing writes kv-toolbox blobs under the selector.
 *
 * @param kv The store.
 * @param selector Where to look, as for `Deno.Kv.list`: a blob counts when
 * its `[...key, "__kv_toolbox_meta__"]` entry lies in the selector.
 * @param options Keys, plaintext choices, abort and progress.
 * @returns How many blobs were migrated, skipped and failed.
 * @throws {TypeError} for a bad argument or option, or conflicting options.
 * @throws {SyntaxError} if `kvToolboxKey` is a string that is not hex, or a
 * kvcrypt key given as JSON text does not parse.
 * @throws {RangeError} if `recipients` is empty.
 * @throws {RangeError} if `kvToolboxKey` is not 128, 192 or 256 bits long.
 *
 * @example Encrypted kv-toolbox blobs under a kvcrypt key
 * ```ts
 * import assert from "node:assert/strict";
 * import { get } from "@kvcrypt/kvcrypt/blob";
 * import { generateKey } from "@kvcrypt/kvcrypt/keys";
 * import { migrateKvToolbox } from "@kvcrypt/kvcrypt/migrate";
 *
 * const kv = await Deno.openKv(":memory:");
 * // A kv-toolbox CryptoKv blob: IV, then AES-GCM ciphertext and tag, in parts.
 * const kvToolboxKey = "000102030405060708090a0b0c0d0e0f";
 * const raw = new Uint8Array(16).map((_, i) => i);
 * const aes = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]);
 * const iv = new Uint8Array(12);
 * const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, aes, new Uint8Array(3));
 * await kv.set(["doc", "__kv_toolbox_blob__", 1], new Uint8Array([...iv, ...new Uint8Array(sealed)]));
 * await kv.set(["doc", "__kv_toolbox_meta__"], { kind: "buffer", size: 31, encrypted: true });
 *
 * const encryptionKey = await generateKey();
 * const skipped = await migrateKvToolbox(kv, { prefix: [] }); // no keys: left alone
 * assert.deepEqual(skipped, { migrated: 0, skipped: 1, failed: 0 });
 * const moved = await migrateKvToolbox(kv, { prefix: [] }, { kvToolboxKey, encryptionKey });
 * assert.deepEqual(moved, { migrated: 1, skipped: 0, failed: 0 });
 * assert.deepEqual((await get(kv, ["doc"], { encryptionKey })).value, new Uint8Array(3));
 * kv.close();
 * ```
 */
export async function migrateKvToolbox(
  kv: KvLike,
  selector: Deno.KvListSelector,
  options: MigrateOptions = {},
): Promise<MigrateResult> {
  const plan = await planOf(kv, selector, options);
  const counts: MigrateResult = { migrated: 0, skipped: 0, failed: 0 };
  for await (const item of scanKvToolbox(plan.kv, selector)) {
    plan.signal?.throwIfAborted();
    let outcome: Outcome | undefined;
    try {
      outcome = item.kind === "meta"
        ? await migrateBlob(plan, item.key, item.entry)
        : await finishLeftovers(plan, item.key);
    } catch (error) {
      plan.signal?.throwIfAborted();
      outcome = { outcome: "failed", reason: String((error as Error)?.message ?? error), error };
    }
    if (outcome === undefined) continue;
    counts[outcome.outcome]++;
    report(options.onProgress, counts, item.key, outcome);
  }
  return counts;
}
