/**
 * The public description of a stored blob (`getMeta`, `list`), built from an
 * opened record or, without a key, from the record's public fields.
 *
 * @module
 */

import { toHex } from "./_bytes.ts";
import type { BlobKind, OpenedRecord } from "./_record.ts";
import type { RecordSummary } from "./_summary.ts";

/** Fields every {@linkcode BlobMeta} has. */
export interface BlobMetaBase {
  /** Plaintext size in bytes. */
  size: number;
  /** Number of chunks (0 for an empty blob). */
  chunks: number;
  /** The version id in hex: changes on every write, never on `rewrap` (an ETag). */
  id: string;
  /** Expiry deadline, ms since the epoch, if the blob was written with `expireIn`. */
  expiresAt?: number;
}

/** Metadata of an encrypted blob, authenticated with the caller's key. */
export interface VerifiedBlobMeta extends BlobMetaBase {
  /** Authenticated by the key given. */
  verified: true;
  /** Always encrypted. */
  encrypted: true;
  /** What the blob was written from. */
  kind: BlobKind;
  /** MIME type ("" when none). */
  type: string;
  /** File name, for files. */
  name?: string;
  /** File modification time, for files. */
  lastModified?: number;
  /** Key ids of the recipients. */
  kids: string[];
}

/** Metadata of a plain blob: complete, but nothing authenticates it. */
export interface PlainBlobMeta extends BlobMetaBase {
  /** Plain records carry no authentication. */
  verified: false;
  /** Not encrypted. */
  encrypted: false;
  /** What the blob was written from. */
  kind: BlobKind;
  /** MIME type ("" when none). */
  type: string;
  /** File name, for files. */
  name?: string;
  /** File modification time, for files. */
  lastModified?: number;
}

/** Public header fields of an encrypted blob read without a key: nothing is authenticated. */
export interface SealedBlobMeta extends BlobMetaBase {
  /** Not authenticated: no key was given. */
  verified: false;
  /** Encrypted; kind, type and name are sealed. */
  encrypted: true;
  /** Key ids of the recipients. */
  kids: string[];
}

/** What `getMeta` and `list` return for a blob; check `verified` and `encrypted` first. */
export type BlobMeta = VerifiedBlobMeta | PlainBlobMeta | SealedBlobMeta;

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
