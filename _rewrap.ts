/**
 * Rewriting an encrypted blob's header for new or fewer recipients, keeping
 * its secret and chunks: `rewrap`'s protocol (open, rewrite, commit with a
 * versionstamp check, look again after a lost reply).
 *
 * @module
 */

import { bytesEqual, concat } from "./_bytes.ts";
import { commitAndVerify } from "./_commit.ts";
import { AlreadyExistsError, DecryptionError, NotFoundError } from "./_errors.ts";
import { assertVersionstamp } from "./_write_protocol.ts";
import { resolveRecipients } from "./_key_input.ts";
import type { KvLike } from "./_kv_like.ts";
import { openEntry } from "./_chunk_reader.ts";
import { readTarget } from "./_read_protocol.ts";
import { expiryOptions } from "./_chunk_writer.ts";
import { encodeHeader, type OpenedSealedRecord, systemRandom, wrapSecret } from "./_kvc1.ts";
import { KV_VALUE_MAX, STANZAS_MAX } from "./_limits.ts";
import type { OpenedRecord } from "./_record.ts";
import type { Keyring } from "./_keyring.ts";
import type { RewrapOptions } from "./_types.ts";

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
    const result = await commitAndVerify(op, () => recordWritten(kv, key, bytes));
    if (result.ok || options.versionstamp !== undefined) return result;
  }
}

/**
 * After a rewrap whose commit threw: the record's versionstamp if it holds
 * the rewrapped bytes (the fresh metaIv makes them unique, so finding them
 * means the commit applied), else undefined.
 */
async function recordWritten(
  kv: KvLike,
  key: Deno.KvKey,
  bytes: Uint8Array,
): Promise<string | undefined> {
  const now = await kv.get(key);
  if (!(now.value instanceof Uint8Array) || !bytesEqual(now.value, bytes)) return undefined;
  return now.versionstamp!;
}
