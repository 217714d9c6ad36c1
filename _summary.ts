/**
 * What can be read from a record without a key: its id, chunk count,
 * whether it is inline, its expiry and its recipients' kids. Used for
 * cleanup after overwrites and for key-less listings.
 *
 * @module
 */

import { parseHeader, type SealedHeader } from "./_kvc1.ts";
import { decodePlainRecord } from "./_kvp1.ts";
import { type RecordLayout, recordMagic } from "./_record.ts";

/** The unauthenticated facts of a record. */
export interface RecordSummary {
  /** Whether it is a KVC1 record. */
  encrypted: boolean;
  /** Version id. */
  id: Uint8Array;
  /** Plaintext size. */
  size: number;
  /** Chunk count. */
  chunks: number;
  /** Whether the data sits in the record (no chunk entries, no version entry). */
  inline: boolean;
  /** Expiry deadline, ms since the epoch; 0 = none. */
  expiresAt: number;
  /** Recipients' key ids (empty for plain records). */
  kids: string[];
}

function summaryOf(
  parsed: RecordLayout & { inline: Uint8Array | undefined },
  kids: string[] | undefined,
): RecordSummary {
  return {
    encrypted: kids !== undefined,
    id: parsed.id,
    size: parsed.size,
    chunks: parsed.chunks,
    inline: parsed.chunks === 0 || parsed.inline !== undefined,
    expiresAt: parsed.expiresAt,
    kids: kids ?? [],
  };
}

/** The summary of a parsed KVC1 header. */
export function summarizeHeader(header: SealedHeader): RecordSummary {
  return summaryOf(header, header.stanzas.map((stanza) => stanza.kid));
}

/** Parses the record at a user key without a key; undefined when it is not a valid record. */
export function summarizeRecord(value: unknown): RecordSummary | undefined {
  const magic = recordMagic(value);
  if (magic === undefined) return undefined;
  try {
    return magic === "plain"
      ? summaryOf(decodePlainRecord(value as Uint8Array), undefined)
      : summarizeHeader(parseHeader(value as Uint8Array));
  } catch {
    return undefined;
  }
}

/** The version id of the record at a user key, if it is one. */
export function recordId(value: unknown): Uint8Array | undefined {
  return summarizeRecord(value)?.id;
}

/** Whether a record has passed its expiry deadline and so reads as absent. */
export function isExpired(summary: { expiresAt: number }, now = Date.now()): boolean {
  return summary.expiresAt !== 0 && now >= summary.expiresAt;
}
