/**
 * Key rotation over many blobs: `rotate` replaces the stanzas of a key
 * ring's older keys by one for its current key (header only, through the
 * rewrap protocol), or writes every blob again under a fresh secret
 * (`reencrypt`, through the write protocol). Every step checks the record's
 * versionstamp, so a concurrent write wins and is counted as skipped.
 *
 * @module
 */

import { commitWrite, prepareWrite } from "./_write_protocol.ts";
import { resolveRecipients } from "./_key_input.ts";
import type { KvLike } from "./_kv_like.ts";
import { INTERNAL_PREFIX } from "./_kv_keys.ts";
import { parseHeader, type SealedHeader } from "./_kvc1.ts";
import { openEntry } from "./_chunk_reader.ts";
import { readTarget, streamRecord } from "./_read_protocol.ts";
import { recordMagic } from "./_record.ts";
import { rewrapBlob } from "./_rewrap.ts";
import { isExpired } from "./_summary.ts";
import { Keyring } from "./_keyring.ts";
import type {
  KeyMaterial,
  MetadataOptions,
  RotateOptions,
  RotateResult,
  SetOptions,
  StoredMetadata,
} from "./_types.ts";

/** What became of one item. */
export type RotateOutcome = keyof RotateResult;

/** Calls the caller's progress callback with a copy of the counts; what it throws is ignored. */
export function reportRotation(
  onProgress: ((progress: RotateResult) => void) | undefined,
  counts: RotateResult,
): void {
  try {
    onProgress?.({ ...counts });
  } catch {
    // The caller's bug: the rotation goes on.
  }
}

/** A zeroed count. */
export function noRotation(): RotateResult {
  return { rotated: 0, unchanged: 0, skipped: 0, failed: 0 };
}

/**
 * The one key ring a rotation works with.
 *
 * @throws {TypeError} for an array of recipients or a value that is not a key.
 */
export async function rotationRing(input: unknown, what: string): Promise<Keyring> {
  // A ring says which key is current; several recipients say nothing about rotation.
  if (Array.isArray(input)) {
    throw new TypeError(
      `Cannot rotate ${what}: encryptionKey must be one key ring (current key first), not an array of recipients`,
    );
  }
  if (input === undefined) throw new TypeError(`Cannot rotate ${what}: encryptionKey is required`);
  const ring = (await resolveRecipients(input as KeyMaterial))[0]!;
  assertRingKids(ring.kids, what);
  return ring;
}

/**
 * Rotation matches stanzas and values to the ring by kid. An empty kid
 * matches every stanza on a read, so it cannot tell the ring's own stanzas
 * from another reader's: rotating with one could drop that reader.
 *
 * @throws {TypeError} when a key of the ring has the empty kid.
 */
export function assertRingKids(kids: readonly string[], what: string): void {
  if (kids.includes("")) {
    throw new TypeError(
      `Cannot rotate ${what}: every key of the ring needs a kid (rotation matches stanzas by kid); import bare keys as JWKs with a kid`,
    );
  }
}

/** Rotates every encrypted blob under `selector` (see `rotate` in blob.ts). */
export async function rotateBlobs(
  kv: KvLike,
  selector: Deno.KvListSelector,
  options: RotateOptions,
): Promise<RotateResult> {
  const ring = await rotationRing(options.encryptionKey, "blobs");
  const counts = noRotation();
  options.signal?.throwIfAborted();
  for await (const entry of kv.list(selector, { consistency: "strong" })) {
    options.signal?.throwIfAborted();
    // kvcrypt's own chunk entries can look like records: only user keys hold blobs.
    if (entry.key[0] === INTERNAL_PREFIX || recordMagic(entry.value) !== "sealed") continue;
    counts[await rotateBlob(kv, entry, ring, options)]++;
    reportRotation(options.onProgress, counts);
  }
  return counts;
}

/** Whether the record at the entry's key changed since it was listed. */
async function changedSince(kv: KvLike, entry: Deno.KvEntry<unknown>): Promise<boolean> {
  return (await kv.get(entry.key)).versionstamp !== entry.versionstamp;
}

/** Rotates one blob; a failure the listing's versionstamp explains is a lost race. */
async function rotateBlob(
  kv: KvLike,
  entry: Deno.KvEntry<unknown>,
  ring: Keyring,
  options: RotateOptions,
): Promise<RotateOutcome> {
  try {
    const header = parseHeader(entry.value as Uint8Array);
    if (isExpired(header)) return "unchanged";
    return options.reencrypt
      ? await reencryptBlob(kv, entry, header, ring, options.signal)
      : await replaceOlderStanzas(kv, entry, header, ring);
  } catch {
    if (options.signal?.aborted) throw options.signal.reason;
    return await changedSince(kv, entry) ? "skipped" : "failed";
  }
}

/** The kids of a header's stanzas that belong to the ring, split into current and older. */
function ringStanzas(header: SealedHeader, ring: Keyring): { ours: string[]; older: string[] } {
  const kids = new Set(ring.kids);
  const ours = header.stanzas.map((stanza) => stanza.kid).filter((kid) => kids.has(kid));
  return { ours, older: ours.filter((kid) => kid !== ring.current.kid) };
}

/** Header only: the ring's older stanzas out, one for its current key in, others kept. */
async function replaceOlderStanzas(
  kv: KvLike,
  entry: Deno.KvEntry<unknown>,
  header: SealedHeader,
  ring: Keyring,
): Promise<RotateOutcome> {
  const { ours, older } = ringStanzas(header, ring);
  if (ours.length === 0) return "skipped";
  if (older.length === 0) return "unchanged";
  const hasCurrent = ours.length > older.length;
  const result = await rewrapBlob(kv, entry.key, {
    encryptionKey: ring,
    add: hasCurrent ? undefined : new Keyring([ring.current]),
    remove: older,
    versionstamp: entry.versionstamp,
  });
  return result.ok ? "rotated" : "skipped";
}

/** The metadata options that store a blob again as what it was. */
function metadataOptions(meta: StoredMetadata): MetadataOptions {
  if (meta.kind === "buffer") return {};
  const type = { type: meta.type ?? "" };
  if (meta.kind === "blob") return type;
  return { ...type, name: meta.name ?? "", lastModified: meta.lastModified ?? 0 };
}

/** Writes the blob again under a fresh secret for the ring's current key. */
async function reencryptBlob(
  kv: KvLike,
  listed: Deno.KvEntry<unknown>,
  header: SealedHeader,
  ring: Keyring,
  signal: AbortSignal | undefined,
): Promise<RotateOutcome> {
  const { ours } = ringStanzas(header, ring);
  if (ours.length === 0) return "skipped";
  // A recipient whose key is not given would lose access: never narrow silently.
  if (ours.length !== header.stanzas.length) return "skipped";
  const target = readTarget(kv, listed.key, { encryptionKey: ring }, "rotate the blob");
  const { entry, record } = await openEntry(target);
  if (record === null || entry.versionstamp !== listed.versionstamp) return "skipped";
  const options: SetOptions = {
    ...metadataOptions(record.meta),
    encryptionKey: ring,
    versionstamp: entry.versionstamp,
    signal,
  };
  // The same deadline: rotation must not make a blob live longer or shorter.
  if (record.expiresAt !== 0) options.expireIn = record.expiresAt - Date.now();
  const source = streamRecord(target, record, 0, record.size);
  const prepared = await prepareWrite(kv, listed.key, source, options);
  const result = await commitWrite(prepared, options.versionstamp);
  return result.ok ? "rotated" : "skipped";
}
