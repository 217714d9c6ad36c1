/**
 * Rewriting an encrypted blob's header for new or fewer recipients, keeping
 * its secret and chunks.
 *
 * @module
 */

import { concat } from "./_bytes.ts";
import type { OpenedRecord } from "./_format.ts";
import { encodeHeader, type OpenedSealedRecord, systemRandom, wrapSecret } from "./_kvc1.ts";
import { KV_VALUE_MAX, STANZAS_MAX } from "./_limits.ts";
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
      throw new TypeError(
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
