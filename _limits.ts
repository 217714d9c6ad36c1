/**
 * Every size limit kvcrypt depends on, named once. Deno KV's own limits come
 * first (measured on Deno 2.9.6); everything else is derived from them.
 *
 * @module
 */

// ---------------------------------------------------------------------------
// Deno KV limits (Deno 2.9.6; the same on Deno Deploy).

/** Largest value Deno KV stores in one entry. */
export const KV_VALUE_MAX = 65_536;
/** Largest sum of mutation sizes in one atomic operation (a set's key counts twice). */
export const KV_ATOMIC_BYTES_MAX = 819_200;
/** Most mutations in one atomic operation. */
export const KV_ATOMIC_MUTATIONS_MAX = 1_000;
/** Most bytes of all keys together in one atomic operation. */
export const KV_ATOMIC_KEY_BYTES_MAX = 81_920;
/**
 * Latest expiry deadline Deno KV accepts, in ms since the epoch (measured: a
 * larger `expireIn` fails with "expireIn is too large").
 */
export const KV_DEADLINE_MAX = 8_210_266_876_799_999;
/** Largest encoded key. */
export const KV_KEY_MAX = 2_048;
/** Most keys one `kv.getMany` or `kv.watch` takes (measured: 11 fail with "Too many ranges"). */
export const KV_GET_MANY_MAX = 10;

// ---------------------------------------------------------------------------
// Chunking.

/** AES-GCM authentication tag appended to every sealed chunk. */
export const GCM_TAG_BYTES = 16;
/** Stored bytes of one full chunk: exactly one KV value. */
export const STORED_CHUNK_BYTES = KV_VALUE_MAX;
/** Plaintext bytes of a full plain chunk (stored as-is). */
export const PLAIN_CHUNK_SIZE = STORED_CHUNK_BYTES;
/** Plaintext bytes of a full encrypted chunk, so each sealed chunk is one full KV value. */
export const SEALED_CHUNK_SIZE = STORED_CHUNK_BYTES - GCM_TAG_BYTES;
/** Most chunks one blob may have: the header's chunk count is a u32. */
export const CHUNKS_MAX = 2 ** 32 - 1;

/**
 * Upper bound on the encoded size of a chunk key
 * `["__kvcrypt__", "chunk", id(16 bytes), index]`: Deno KV encodes the two
 * strings with a tag and a terminator (13 + 7 bytes), the id with a tag,
 * escapes and terminator (at most 34 bytes) and the number as 9 bytes.
 * Rounded up to leave room for the encoder's framing.
 */
export const CHUNK_KEY_BYTES_MAX = 64;

/**
 * Chunks written per atomic: as many full chunks as fit the atomic's byte
 * limit, each set counting its value plus its key twice. The first atomic of
 * a write also carries the version entry, which fits in what is left over
 * (819,200 − 12 × 65,664 = 31,232 bytes).
 */
export const CHUNKS_PER_ATOMIC = Math.floor(
  KV_ATOMIC_BYTES_MAX / (STORED_CHUNK_BYTES + 2 * CHUNK_KEY_BYTES_MAX),
);

/**
 * Most chunks `set` commits in the same atomic as the record (its last batch;
 * for a blob of no more chunks, the version entry too, so the whole blob is
 * one commit): one chunk's room of the atomic is left for the version entry,
 * the record (≤ one KV value), the replaced version's tombstone and the
 * checks.
 */
export const CHUNKS_IN_RECORD_COMMIT = CHUNKS_PER_ATOMIC - 1;

/** Keys deleted per atomic when removing a version's chunks. */
export const DELETES_PER_ATOMIC = Math.min(
  KV_ATOMIC_MUTATIONS_MAX,
  Math.floor(KV_ATOMIC_KEY_BYTES_MAX / CHUNK_KEY_BYTES_MAX),
) - 1; // one mutation is left for the version entry's delete when the batch carries it

// ---------------------------------------------------------------------------
// Records.

/** Length of a blob version id (a Uint8Array key part, fresh per write). */
export const ID_BYTES = 16;
/** Magic bytes that start every record. */
export const MAGIC_BYTES = 4;
/** Largest metadata JSON (`{"kind","type"?,"name"?,"lastModified"?}`) in UTF-8 bytes. */
export const META_JSON_MAX = 2_048;
/** Largest key id (`kid`) in UTF-8 bytes. */
export const KID_MAX = 64;
/** Most recipients (stanzas) one encrypted blob may have. */
export const STANZAS_MAX = 16;
/** AES-GCM nonce length. */
export const GCM_IV_BYTES = 12;
/** Bytes of the per-version secret S. */
export const SECRET_BYTES = 32;
/** Bytes of the key commitment. */
export const COMMITMENT_BYTES = 32;
/** A wrapped secret: ciphertext plus tag. */
export const WRAPPED_SECRET_BYTES = SECRET_BYTES + GCM_TAG_BYTES;

/** Plain record header: magic, id, chunkSize u32, size u64, chunks u32, expiresAt u64, metaLen u32. */
export const PLAIN_HEADER_FIXED = MAGIC_BYTES + ID_BYTES + 4 + 8 + 4 + 8 + 4;
/** Largest plain header: the fixed fields plus the largest metadata. */
export const PLAIN_HEADER_MAX = PLAIN_HEADER_FIXED + META_JSON_MAX;

/** One stanza's largest size: kidLen, kid, iv, wrapped secret. */
export const STANZA_MAX = 1 + KID_MAX + GCM_IV_BYTES + WRAPPED_SECRET_BYTES;
/** KVC1 header up to the stanza count: magic, suite, id, commitment, chunkSize, size, chunks, expiresAt, n. */
export const SEALED_HEADER_FIXED = MAGIC_BYTES + 1 + ID_BYTES + COMMITMENT_BYTES + 4 + 8 + 4 + 8 +
  1;
/** Largest KVC1 header: all stanzas at their largest, metaIv, metaLen, the largest sealed metadata. */
export const SEALED_HEADER_MAX = SEALED_HEADER_FIXED + STANZAS_MAX * STANZA_MAX + GCM_IV_BYTES +
  4 + META_JSON_MAX + GCM_TAG_BYTES;

/**
 * Largest secret a KeyWrapper may return: cloud KMS ciphertexts are 150–200
 * bytes, a transit engine's 60–90; 1 KiB leaves room and keeps 16 of them
 * (17 KiB) well inside one KV value.
 */
export const WRAPPER_OUTPUT_MAX = 1_024;
/** One KVC2 wrapper stanza's largest size: form byte, kidLen, kid, u16 length, wrapped secret. */
export const WRAPPER_STANZA_MAX = 1 + 1 + KID_MAX + 2 + WRAPPER_OUTPUT_MAX;
/** Largest KVC2 header (KVC1's layout, every stanza a wrapper stanza at its largest). */
export const WRAPPED_HEADER_MAX = SEALED_HEADER_FIXED + STANZAS_MAX * WRAPPER_STANZA_MAX +
  GCM_IV_BYTES + 4 + META_JSON_MAX + GCM_TAG_BYTES;

/**
 * Largest plain blob stored inline in its record: what is left of one KV value
 * after the largest possible plain header.
 */
export const PLAIN_INLINE_MAX = KV_VALUE_MAX - PLAIN_HEADER_MAX;
/**
 * Largest encrypted blob stored inline: what is left of one KV value after the
 * largest possible KVC1 header and the inline chunk's tag, so adding a
 * recipient never has to move data out of the record.
 */
export const SEALED_INLINE_MAX = KV_VALUE_MAX - SEALED_HEADER_MAX - GCM_TAG_BYTES;
/**
 * Largest encrypted blob stored inline when a recipient is a KeyWrapper:
 * what is left after the largest KVC2 header, so adding any recipient later
 * never has to move data.
 */
export const WRAPPED_INLINE_MAX = KV_VALUE_MAX - WRAPPED_HEADER_MAX - GCM_TAG_BYTES;

// ---------------------------------------------------------------------------
// Pipelines. On Deno Deploy every KV call is a network round trip (RTT), so
// the number of *sequential* calls, not their count, sets the latency. Each
// constant below trades round trips against memory held in flight.

/**
 * Chunk atomics a write keeps in flight after the first one committed (the
 * first must commit alone: it creates the version entry the others check).
 * A write then pays 1 + ceil((atomics − 1) / 16) + 1 round trips, the last
 * one the record commit (carrying a last batch of up to
 * CHUNKS_IN_RECORD_COMMIT chunks): 4 for 16 MiB (21 chunk atomics), 8 for
 * 64 MiB (85); it holds at most 16 × 12 × 64 KiB = 12 MiB in flight.
 */
export const WRITE_ATOMICS_IN_FLIGHT = 16;
/** Chunks fetched by one read request (one `list` page of 1 MiB). */
export const READ_BATCH_CHUNKS = 16;
/**
 * Read requests a stream keeps ahead of its consumer: 4 MiB of read-ahead,
 * enough to hide a 20 ms RTT at 200 MiB/s while keeping memory bounded. The
 * first byte costs two round trips (record, first batch).
 */
export const READ_BATCHES_IN_FLIGHT = 4;
/**
 * Read requests a buffered read keeps in flight: it holds the whole value
 * anyway, so it may ask for 32 MiB at once; 16 MiB then costs two round
 * trips (record, one wave of batches) and 64 MiB three.
 */
export const BUFFERED_BATCHES_IN_FLIGHT = 32;
/**
 * Batches a whole read asks for under a version hint, before the record has
 * named the version: enough for one round trip up to 4 MiB, few enough that
 * a stale hint whose old chunks still exist wastes at most 4 MiB of reads.
 */
export const HINTED_BATCHES_MAX = 4;
/**
 * Chunks a read opens (decrypts) ahead of the one it delivers. Web Crypto
 * works on the calling thread in Deno: opening a whole batch at once delays
 * the first byte, opening none ahead leaves the event loop idle between
 * chunks.
 */
export const CHUNKS_OPENED_AHEAD = 4;
/** Times a buffered read restarts when the blob is replaced under it. */
export const READ_RESTARTS_MAX = 8;
/** Chunks and the version entry outlive an expiring record by this much, so late readers finish. */
export const CHUNK_GRACE_MS = 60 * 60 * 1000;
/** Default age below which `vacuum` leaves a version alone: it may be a write in flight. */
export const VACUUM_OLDER_THAN_MS = 60 * 60 * 1000;
/** Version entries listed per page by `vacuum`. */
export const VACUUM_LIST_BATCH = 100;
