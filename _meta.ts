/**
 * Builds the public description of a stored blob (`BlobMeta`, for `getMeta`
 * and `list`): from an opened record's header and stored metadata, or,
 * without a key, from the header fields anyone can see. The types are in
 * _types.ts.
 *
 * @module
 */

import { toHex } from "./_bytes.ts";
import type { OpenedRecord } from "./_record.ts";
import type { RecordSummary } from "./_summary.ts";
import type { BlobMetaBase, PlainBlobMeta, SealedBlobMeta, VerifiedBlobMeta } from "./_types.ts";

function baseOf(layout: { size: number; chunks: number; id: Uint8Array; expiresAt: number }) {
  const base: BlobMetaBase = { size: layout.size, chunks: layout.chunks, id: toHex(layout.id) };
  if (layout.expiresAt !== 0) base.expiresAt = layout.expiresAt;
  return base;
}

/** The metadata of an opened (and, if encrypted, authenticated) record. */
export function metaOfRecord(record: OpenedRecord): VerifiedBlobMeta | PlainBlobMeta {
  const { kind, type = "", name, lastModified } = record.meta;
  const file = name === undefined
    ? {}
    : { name, ...(lastModified === undefined ? {} : { lastModified }) };
  if (record.encrypted) {
    return {
      ...baseOf(record),
      verified: true,
      encrypted: true,
      kind,
      type,
      ...file,
      kids: [...record.kids],
    };
  }
  return { ...baseOf(record), verified: false, encrypted: false, kind, type, ...file };
}

/** The public fields of an encrypted record read without a key. */
export function metaOfSummary(summary: RecordSummary): SealedBlobMeta {
  return { ...baseOf(summary), verified: false, encrypted: true, kids: summary.kids };
}
