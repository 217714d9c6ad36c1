/**
 * The floor under kvcrypt's encryption cost: a `set` + `get` round trip in
 * the library's own pattern (12-chunk atomics, 16 in flight; 16-chunk `list`
 * pages, all in flight) written against Deno KV and Web Crypto directly,
 * with no record, version entry, header or checks. Plain and AES-256-GCM
 * runs of this show what encryption costs before any library code runs.
 *
 * @module
 */

import { owned } from "../_bytes.ts";
import {
  CHUNKS_PER_ATOMIC,
  PLAIN_CHUNK_SIZE,
  READ_BATCH_CHUNKS,
  SEALED_CHUNK_SIZE,
  WRITE_ATOMICS_IN_FLIGHT,
} from "../_limits.ts";

/** A fixed nonce: fine for a benchmark that never keeps what it seals. */
const BENCH_IV = new Uint8Array(12);

/** Writes `data` in the library's chunk pattern under `prefix`, sealing each chunk if `key`. */
async function rawWrite(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  data: Uint8Array,
  key: CryptoKey | undefined,
): Promise<number> {
  const chunkSize = key ? SEALED_CHUNK_SIZE : PLAIN_CHUNK_SIZE;
  const chunks = Math.ceil(data.length / chunkSize);
  const inFlight = new Set<Promise<unknown>>();
  for (let first = 0; first < chunks; first += CHUNKS_PER_ATOMIC) {
    const values: Promise<Uint8Array>[] = [];
    for (let i = first; i < Math.min(chunks, first + CHUNKS_PER_ATOMIC); i++) {
      const chunk = owned(data.subarray(i * chunkSize, (i + 1) * chunkSize));
      values.push(
        key
          ? crypto.subtle.encrypt({ name: "AES-GCM", iv: BENCH_IV }, key, chunk).then((sealed) =>
            new Uint8Array(sealed)
          )
          : Promise.resolve(chunk),
      );
    }
    while (inFlight.size >= WRITE_ATOMICS_IN_FLIGHT) await Promise.race(inFlight);
    const running: Promise<unknown> = Promise.all(values).then((ready) => {
      const op = kv.atomic();
      ready.forEach((value, offset) => op.set([...prefix, first + offset], value));
      return op.commit();
    }).finally(() => inFlight.delete(running));
    inFlight.add(running);
  }
  await Promise.all(inFlight);
  return chunks;
}

/** Reads `chunks` chunks back into one buffer, opening each if `key`. */
async function rawRead(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  chunks: number,
  size: number,
  key: CryptoKey | undefined,
): Promise<Uint8Array> {
  const pages: Promise<Uint8Array[]>[] = [];
  for (let first = 0; first < chunks; first += READ_BATCH_CHUNKS) {
    const end = Math.min(chunks, first + READ_BATCH_CHUNKS);
    pages.push((async () => {
      const opened: Promise<Uint8Array>[] = [];
      const selector = { start: [...prefix, first], end: [...prefix, end] };
      for await (const entry of kv.list<Uint8Array>(selector, { limit: end - first })) {
        opened.push(
          key
            ? crypto.subtle.decrypt({ name: "AES-GCM", iv: BENCH_IV }, key, owned(entry.value))
              .then((plain) => new Uint8Array(plain))
            : Promise.resolve(entry.value),
        );
      }
      return await Promise.all(opened);
    })());
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const page of pages) {
    for (const chunk of await page) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
  }
  return out;
}

/** One raw `set` + `get` of `data` under `prefix`, sealed with `key` if given. */
export async function rawRoundTrip(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  data: Uint8Array,
  key: CryptoKey | undefined,
): Promise<Uint8Array> {
  const chunks = await rawWrite(kv, prefix, data, key);
  return await rawRead(kv, prefix, chunks, data.length, key);
}
