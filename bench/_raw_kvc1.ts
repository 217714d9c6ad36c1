/**
 * The floor of an encrypted blob in kvcrypt's format, for the small-blob
 * benchmark: the Web Crypto calls a KVC1 write and read make, each at the
 * earliest point it can start, around the raw KV calls of the two-call floor
 * (a record `get`, chunk atomics, one `list`), with no record to build,
 * check or parse and no library code.
 *
 * A write: the record read alongside the key schedule (the HKDF of
 * Kenc ‖ N0 ‖ commitment through `node:crypto`, as kvcrypt does, and the AES
 * key import) and the stanza wrap; then every chunk and the metadata sealed
 * together; then the chunk atomics, the last of which also creates the version
 * entry and sets the record (header-sized bytes and the sealed metadata) under
 * a check of the record read, as kvcrypt's one commit does for a blob of at
 * most {@linkcode CHUNKS_IN_RECORD_COMMIT} chunks (a larger one commits its
 * record after the chunk atomics). A read of what this process wrote (the version keys in hand, as
 * kvcrypt's version cache has them): the record `get` and the chunk `list`
 * together, then the metadata and every chunk opened together.
 *
 * @module
 */

import { concat } from "../_bytes.ts";
import { gcmOpen, gcmSeal, hkdfSha256, importAesGcmKey } from "../_aes_gcm.ts";
import { chunkKey, chunkPrefix, versionKey } from "../_kv_keys.ts";
import {
  CHUNKS_IN_RECORD_COMMIT,
  CHUNKS_PER_ATOMIC,
  COMMITMENT_BYTES,
  GCM_IV_BYTES,
  SEALED_CHUNK_SIZE,
  WRITE_ATOMICS_IN_FLIGHT,
} from "../_limits.ts";
import { rawId } from "./_scaling_raw_kv.ts";

/** AES-256 key bytes. */
const KEY_BYTES = 256 / 8;
/** A fixed nonce: fine for a benchmark that never keeps what it seals. */
const BENCH_IV = new Uint8Array(GCM_IV_BYTES);
/** A metadata JSON of the size kvcrypt stores for a byte array, and a header-sized AAD. */
const META = new TextEncoder().encode('{"kind":"buffer"}');
const AAD = new Uint8Array(160);
/** A version entry of the size kvcrypt writes (state, created, the encoded user key). */
const VERSION_ENTRY = new Uint8Array(32);

/** KVC1's key schedule for one version: HKDF-SHA-256 to Kenc ‖ N0 ‖ commitment, Kenc imported. */
async function contentKey(secret: Uint8Array, id: Uint8Array): Promise<CryptoKey> {
  const bits = hkdfSha256(
    secret,
    id,
    new Uint8Array(15),
    KEY_BYTES + GCM_IV_BYTES + COMMITMENT_BYTES,
  );
  return await importAesGcmKey(bits.subarray(0, KEY_BYTES), ["encrypt", "decrypt"]);
}

/** Adds chunks `first` onwards of `sealed` to `op`. */
function setChunks(
  op: Deno.AtomicOperation,
  id: Uint8Array,
  sealed: Uint8Array[],
  first: number,
): void {
  sealed.forEach((value, offset) => op.set(chunkKey(id, first + offset), value));
}

/**
 * Commits the sealed chunks and the record: a blob of at most
 * {@linkcode CHUNKS_IN_RECORD_COMMIT} chunks in one atomic with the version
 * entry and the record; a larger one as chunk atomics of
 * {@linkcode CHUNKS_PER_ATOMIC} (several in flight, the first creating the
 * version entry), then the record.
 */
async function commitBlob(
  kv: Deno.Kv,
  id: Uint8Array,
  sealed: Uint8Array[],
  record: { key: Deno.KvKey; versionstamp: string | null; value: Uint8Array },
): Promise<void> {
  const op = kv.atomic().check({ key: record.key, versionstamp: record.versionstamp });
  if (sealed.length <= CHUNKS_IN_RECORD_COMMIT) {
    setChunks(op.set(versionKey(id), VERSION_ENTRY), id, sealed, 0);
  } else {
    const commits: Promise<unknown>[] = [];
    for (let first = 0; first < sealed.length; first += CHUNKS_PER_ATOMIC) {
      if (commits.length >= WRITE_ATOMICS_IN_FLIGHT) await commits.shift();
      const chunks = kv.atomic();
      if (first === 0) chunks.set(versionKey(id), VERSION_ENTRY);
      setChunks(chunks, id, sealed.slice(first, first + CHUNKS_PER_ATOMIC), first);
      commits.push(chunks.commit());
    }
    await Promise.all(commits);
  }
  await op.set(record.key, record.value).commit();
}

/** One store's floor contender: `write` then `read` of one value at `recordKey`. */
export function rawKvc1(kv: Deno.Kv, recordKey: Deno.KvKey, kek: CryptoKey): {
  write(value: Uint8Array): Promise<unknown>;
  read(): Promise<Uint8Array>;
} {
  const id = rawId();
  let kenc: CryptoKey | undefined;
  let sealedMeta: Uint8Array | undefined;
  return {
    async write(value) {
      const secret = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
      const [current, key] = await Promise.all([
        kv.get(recordKey),
        contentKey(secret, id),
        gcmSeal(kek, BENCH_IV, secret, AAD.subarray(0, 30)),
      ]);
      kenc = key;
      const pieces: Promise<Uint8Array>[] = [gcmSeal(key, BENCH_IV, META, AAD)];
      for (let at = 0; at < value.length; at += SEALED_CHUNK_SIZE) {
        pieces.push(gcmSeal(key, BENCH_IV, value.subarray(at, at + SEALED_CHUNK_SIZE)));
      }
      const [meta, ...chunks] = await Promise.all(pieces);
      sealedMeta = meta;
      const record = concat([AAD, meta!]);
      await commitBlob(kv, id, chunks, { ...current, value: record });
    },
    async read() {
      const stored: Uint8Array[] = [];
      const list = (async () => {
        for await (const entry of kv.list<Uint8Array>({ prefix: chunkPrefix(id) })) {
          stored.push(entry.value);
        }
      })();
      await Promise.all([kv.get(recordKey), list]);
      const [, ...chunks] = await Promise.all([
        gcmOpen(kenc!, BENCH_IV, sealedMeta!, AAD),
        ...stored.map((chunk) => gcmOpen(kenc!, BENCH_IV, chunk)),
      ]);
      return concat(chunks);
    },
  };
}
