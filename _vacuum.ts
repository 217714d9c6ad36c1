/**
 * Finding and removing what crashed or abandoned writes left behind
 * (FORMAT.md, "Vacuum").
 *
 * The rule that keeps vacuum from losing data: a live version is removed
 * only when the record at its key provably does not point to it: the record
 * is absent, is not a kvcrypt record (the key was overwritten with another
 * value), or is a record of a format this version understands that names
 * another id. A record of an unknown format version (a newer kvcrypt's) or
 * one that fails to parse may still point to it: its chunks are kept.
 *
 * @module
 */

import type { KvLike } from "./_kv_like.ts";
import { bytesEqual } from "./_bytes.ts";
import { versionPrefix } from "./_kv_keys.ts";
import { KV_KEY_MAX, VACUUM_LIST_BATCH } from "./_limits.ts";
import {
  decodeVersion,
  newerFormatMagic,
  recordMagic,
  VERSION_TOMBSTONE,
  type VersionEntry,
} from "./_record.ts";
import { summarizeRecord } from "./_summary.ts";
import { decodeKey, encodeKey, kvKeySize } from "./_user_key.ts";
import { finishTombstone, tombstoneOf } from "./_versions.ts";

/** What {@linkcode vacuumVersions} did. */
export interface VacuumCounts {
  /** Version entries removed. */
  versions: number;
  /** Chunk entries removed. */
  chunks: number;
  /** Old live versions left alone: their record could not be understood. */
  skipped: number;
}

/** What vacuum may conclude about a live version from the record at its key. */
type Verdict = "orphan" | "referenced" | "unknown";

/**
 * Removes versions older than `olderThan` ms that no record points to, and
 * finishes tombstones of that age. Returns what it removed and skipped.
 */
export async function vacuumVersions(kv: KvLike, olderThan: number): Promise<VacuumCounts> {
  const cutoff = Date.now() - olderThan;
  const counts: VacuumCounts = { versions: 0, chunks: 0, skipped: 0 };
  const versions = kv.list<Uint8Array>({ prefix: versionPrefix() }, {
    batchSize: VACUUM_LIST_BATCH,
    consistency: "strong",
  });
  for await (const entry of versions) {
    const id = entry.key[2];
    const version = decodeVersion(entry.value);
    if (!(id instanceof Uint8Array) || version === undefined || version.created > cutoff) continue;
    if (version.state !== VERSION_TOMBSTONE) {
      const verdict = await tombstoneOrphan(kv, entry, version, id);
      if (verdict === "unknown") counts.skipped++;
      if (verdict !== "orphan") continue;
    }
    counts.chunks += await finishTombstone(kv, id);
    counts.versions++;
  }
  return counts;
}

/**
 * The user key a version entry names, or undefined when its bytes are not
 * exactly the encoding of a key (a decoder that changed a character would
 * send vacuum to the wrong record).
 */
function storedUserKey(encodedKey: Uint8Array): Deno.KvKey | undefined {
  let key: Deno.KvKey;
  try {
    key = decodeKey(encodedKey);
  } catch {
    return undefined;
  }
  return key.length > 0 && bytesEqual(encodeKey(key), encodedKey) ? key : undefined;
}

/** Whether the record value at a version's key points to version `id`, by the rule above. */
function judgeRecord(value: unknown, id: Uint8Array): Verdict {
  if (newerFormatMagic(value) !== undefined) return "unknown";
  if (recordMagic(value) === undefined) return "orphan";
  const summary = summarizeRecord(value);
  if (summary === undefined) return "unknown";
  return bytesEqual(summary.id, id) ? "referenced" : "orphan";
}

/**
 * Tombstones a live version no record points to, in an atomic that checks
 * both the record and the version entry. "orphan" only once the tombstone
 * is written; someone changing either entry meanwhile makes it "referenced"
 * (left for a later run).
 */
async function tombstoneOrphan(
  kv: KvLike,
  entry: Deno.KvEntry<Uint8Array>,
  version: VersionEntry,
  id: Uint8Array,
): Promise<Verdict> {
  const userKey = storedUserKey(version.encodedKey);
  if (userKey === undefined) return "unknown";
  const op = kv.atomic().check(entry).set(entry.key, tombstoneOf(version.encodedKey));
  // A key Deno KV cannot store holds no record (and reading it would throw).
  if (kvKeySize(userKey) <= KV_KEY_MAX) {
    const record = await kv.get(userKey);
    const verdict = record.versionstamp === null ? "orphan" : judgeRecord(record.value, id);
    if (verdict !== "orphan") return verdict;
    // Checks the record too: a writer publishing this version wins.
    op.check(record);
  }
  return (await op.commit()).ok ? "orphan" : "referenced";
}
