/**
 * Rewriting an encrypted blob's header for new or fewer recipients, keeping
 * its secret and chunks: `rewrap`'s protocol (open, rewrite, commit with a
 * versionstamp check, look again after a lost reply).
 *
 * @module
 */

import { bytesEqual, concat } from "./_bytes.ts";
import { AlreadyExistsError, DecryptionError, NotFoundError } from "./_errors.ts";
import { assertVersionstamp } from "./_write_protocol.ts";
import { type EncryptionKey, type KeyMaterial, resolveRecipients } from "./_key_input.ts";
import type { KvLike } from "./_kv_like.ts";
import { openEntry } from "./_chunk_reader.ts";
import { readTarget } from "./_read_protocol.ts";
import { expiryOptions } from "./_chunk_writer.ts";
import { encodeHeader, type OpenedSealedRecord, systemRandom, wrapSecret } from "./_kvc1.ts";
import { KV_VALUE_MAX, STANZAS_MAX } from "./_limits.ts";
import type { OpenedRecord } from "./_record.ts";
import type { Keyring } from "./keys.ts";

export function isSealed(record: OpenedRecord): record is OpenedSealedRecord {
  return record.encrypted;
}

/** The record with stanzas dropped and added and the metadata sealed under a fresh nonce. */
export async function rewrapRecord(
  record: OpenedSealedRecord,
  key: Deno.KvKey,
  keyText: string,
  added: readonly Keyring[],
  removed: ReadonlySet<string>,
): Promise<Uint8Array> {
  const { header, keys, secret } = record;
  const kept = header.stanzas.filter((stanza) => !removed.has(stanza.kid));
  for (const ring of added) {
    const kid = ring.current.kid;
    if (kid !== "" && kept.some((stanza) => stanza.kid === kid)) {
      throw new AlreadyExistsError(
        `Cannot rewrap ${keyText}: kid "${kid}" already has a stanza; remove it in the same call to replace it`,
      );
    }
  }
  const stanzas = [
    ...kept,
    ...await Promise.all(
      added.map((ring) => wrapSecret(ring.current, secret, header.id, systemRandom)),
    ),
  ];
  if (stanzas.length === 0 || stanzas.length > STANZAS_MAX) {
    throw new RangeError(
      `Cannot rewrap ${keyText}: a blob needs 1 to ${STANZAS_MAX} recipients, this would leave ${stanzas.length}`,
    );
  }
  const fields = { ...header, stanzas };
  const bytes = await encodeHeader(fields, keys, record.meta, key, systemRandom);
  if (header.inline === undefined) return bytes;
  // An inline blob written for local keys may not leave room for large wrapper stanzas.
  if (bytes.length + header.inline.length > KV_VALUE_MAX) {
    throw new RangeError(
      `Cannot rewrap ${keyText}: with these recipients its header and inline data would take ${
        bytes.length + header.inline.length
      } bytes, more than one Deno KV value (${KV_VALUE_MAX}); store it again with set() and all its recipients instead (it is then kept in chunks)`,
    );
  }
  return concat([bytes, header.inline]);
}

/** Options of `rewrap`. */
export interface RewrapOptions {
  /**
   * A key that opens the blob now (a keyring may hold old and new keys; an
   * array is a list of keys to try, as for reads).
   */
  encryptionKey: EncryptionKey;
  /**
   * Recipients to add, as `recipients` of `set`: one stanza per entry (a
   * key, a key ring's current key, or a KeyWrapper); a single entry may be
   * given without the array.
   */
  add?: KeyMaterial | readonly KeyMaterial[] | undefined;
  /** Key ids whose stanzas are dropped (kids not present are ignored). */
  remove?: readonly string[] | undefined;
  /** Rewrap only if the record's versionstamp is this one. */
  versionstamp?: string | undefined;
}

/**
 * Rewrites the header of the encrypted blob at `key` (see `rewrap`): retries
 * a lost race without a versionstamp, returns `{ ok: false }` with one.
 */
export async function rewrapBlob(
  kv: KvLike,
  key: Deno.KvKey,
  options: RewrapOptions,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  // Opened with allowPlaintext so a plain blob gets rewrap's own message.
  const target = readTarget(kv, key, { ...options, allowPlaintext: true }, "rewrap the blob");
  if (options.encryptionKey === undefined) {
    throw new TypeError(`Cannot rewrap ${target.keyText}: encryptionKey is required`);
  }
  assertVersionstamp(options.versionstamp, `rewrap ${target.keyText}`);
  const added = options.add === undefined ? [] : await resolveRecipients(options.add);
  const removed = new Set(options.remove ?? []);
  for (;;) {
    const { entry, record } = await openEntry(target);
    if (record === null) {
      throw new NotFoundError(`Cannot rewrap ${target.keyText}: no blob is stored at the key`);
    }
    if (!isSealed(record)) {
      // As a read with a key: a plain record where an encrypted one was expected.
      throw new DecryptionError(`Cannot rewrap ${target.keyText}: the blob is not encrypted`);
    }
    if (options.versionstamp !== undefined && options.versionstamp !== entry.versionstamp) {
      return { ok: false };
    }
    const bytes = await rewrapRecord(record, key, target.keyText, added, removed);
    const op = kv.atomic().check(entry).set(key, bytes, expiryOptions(record.expiresAt));
    let result: Deno.KvCommitResult | Deno.KvCommitError;
    try {
      result = await op.commit();
    } catch (error) {
      // The reply may be lost although the commit applied: the fresh metaIv
      // makes these record bytes unique, so finding them means it did.
      const now = await kv.get(key);
      if (!(now.value instanceof Uint8Array) || !bytesEqual(now.value, bytes)) throw error;
      result = { ok: true, versionstamp: now.versionstamp! };
    }
    if (result.ok || options.versionstamp !== undefined) return result;
  }
}
