/**
 * `deno bench crypto.bench.ts` (or `deno task bench`): what encryption costs.
 *
 * Per size, one group compares a `set` + `get` round trip of plain blobs
 * (the baseline) with AES-128 and AES-256 blobs on a file-backed KV, next
 * to the floor: the same chunk pattern against Deno KV and Web Crypto
 * directly, plain and AES-256 (bench/_raw_crypto_roundtrip.ts). A last
 * group compares the library's own chunk path without KV (cutting a stream
 * into chunks, sealing, building and opening the header, opening every
 * chunk, copies included) with raw Web Crypto AES-GCM over the same bytes,
 * one call per chunk, all chunks in flight at once in both: the crypto
 * ceiling. Two more groups compare `cryptoKv` `set` and `get` of a small
 * object (about 100 bytes serialized) with plain `Deno.Kv` (the baseline),
 * next to their floors: the same work without the library, sealed once with
 * Web Crypto and once with `node:crypto`'s AES-256-GCM (the cheapest AES-GCM
 * call this runtime has for a small input; the library uses Web Crypto).
 *
 * @module
 */

import * as v8 from "node:v8";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { owned } from "./_bytes.ts";
import { fixedPieces } from "./_source.ts";
import {
  chunkNonce,
  createSealedFormat,
  deriveVersionKeys,
  openParsedRecord,
  parseHeader,
  SUITE_AES_256_GCM,
} from "./_kvc1.ts";
import { SEALED_CHUNK_SIZE } from "./_limits.ts";
import { cryptoKv, generateKey, get, importKey, set } from "./mod.ts";
import { rawRoundTrip } from "./bench/_raw_crypto_roundtrip.ts";

const KIB = 1024;
const MIB = 1024 * KIB;
const SIZES = [64 * KIB, MIB, 16 * MIB, 64 * MIB] as const;

const dir = await Deno.makeTempDir({ prefix: "kvcrypt-bench-" });
const kv = await Deno.openKv(`${dir}/bench.sqlite3`);
/**
 * The small-object rows' own store, so they measure a small value on a small
 * file, not on the one the blob groups grow to hundreds of MiB.
 */
const smallKv = await Deno.openKv(`${dir}/small.sqlite3`);
const keys = {
  "AES-128": await generateKey({ bits: 128 }),
  "AES-256": await generateKey({ bits: 256 }),
};
/** The floors' key: raw bytes for `node:crypto`, the same key imported for Web Crypto. */
const rawKeyBytes = crypto.getRandomValues(new Uint8Array(256 / 8));
const rawAesKey = await crypto.subtle.importKey("raw", rawKeyBytes, "AES-GCM", false, [
  "encrypt",
  "decrypt",
]);
globalThis.addEventListener("unload", () => {
  kv.close();
  smallKv.close();
  Deno.removeSync(dir, { recursive: true });
});

function label(size: number): string {
  return size >= MIB ? `${size / MIB} MiB` : `${size / KIB} KiB`;
}

function iterations(size: number): { n?: number; warmup?: number } {
  return size >= 16 * MIB ? { n: 5, warmup: 1 } : {};
}

for (const size of SIZES) {
  const value = crypto.getRandomValues(new Uint8Array(Math.min(size, 65_536)));
  const data = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += value.length) data.set(value, offset);
  const group = `set+get ${label(size)}`;
  let round = 0;
  Deno.bench({
    name: `plain ${label(size)}`,
    group,
    baseline: true,
    ...iterations(size),
    async fn() {
      const key = ["bench", "plain", size, round++ % 4];
      await set(kv, key, data);
      await get(kv, key);
    },
  });
  // The floor: the same pattern against Deno KV and Web Crypto, without the library.
  for (
    const [name, key] of [["raw KV", undefined], [
      "raw KV + Web Crypto AES-256",
      rawAesKey,
    ]] as const
  ) {
    Deno.bench({
      name: `${name} ${label(size)}`,
      group,
      ...iterations(size),
      async fn() {
        await rawRoundTrip(kv, ["bench", "raw", name, size, round++ % 4], data, key);
      },
    });
  }
  for (const [name, encryptionKey] of Object.entries(keys)) {
    Deno.bench({
      name: `${name} ${label(size)}`,
      group,
      ...iterations(size),
      async fn() {
        const key = ["bench", name, size, round++ % 4];
        await set(kv, key, data, { encryptionKey });
        await get(kv, key, { encryptionKey });
      },
    });
  }
}

// ---------------------------------------------------------------------------
// Sealing and opening 64 MiB without KV: the library's chunk path vs raw Web Crypto.

const CEILING_BYTES = 64 * MIB;
const ceilingData = new Uint8Array(CEILING_BYTES).fill(42);
const ring = await importKey(keys["AES-256"]);

/** The bytes as a stream of 1 MiB views, as a caller's stream would deliver them. */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset += MIB));
    },
  });
}

Deno.bench({
  name: "raw Web Crypto AES-256-GCM seal+open 64 MiB",
  group: "seal+open 64 MiB (no KV)",
  baseline: true,
  n: 5,
  warmup: 1,
  async fn() {
    const versionKeys = await deriveVersionKeys(
      new Uint8Array(32),
      new Uint8Array(16),
      SUITE_AES_256_GCM,
    );
    const count = Math.ceil(CEILING_BYTES / SEALED_CHUNK_SIZE);
    const indices = Array.from({ length: count }, (_, i) => i);
    const sealed = await Promise.all(indices.map((i) => {
      const chunk = ceilingData.subarray(i * SEALED_CHUNK_SIZE, (i + 1) * SEALED_CHUNK_SIZE);
      const iv = owned(chunkNonce(versionKeys.n0, i));
      return crypto.subtle.encrypt({ name: "AES-GCM", iv }, versionKeys.kenc, chunk);
    }));
    await Promise.all(indices.map((i) => {
      const iv = owned(chunkNonce(versionKeys.n0, i));
      return crypto.subtle.decrypt({ name: "AES-GCM", iv }, versionKeys.kenc, sealed[i]!);
    }));
  },
});

Deno.bench({
  name: "kvcrypt chunk path seal+open 64 MiB",
  group: "seal+open 64 MiB (no KV)",
  n: 5,
  warmup: 1,
  async fn() {
    const id = crypto.getRandomValues(new Uint8Array(16));
    const format = await createSealedFormat([ring], id);
    const pending: Promise<Uint8Array>[] = [];
    let index = 0;
    for await (
      const piece of fixedPieces(streamOf(ceilingData), format.chunkSize, undefined, '["bench"]')
    ) {
      pending.push(format.sealChunk(index++, piece));
    }
    const sealed = await Promise.all(pending);
    const record = await format.encodeRecord(
      { id, chunkSize: format.chunkSize, size: CEILING_BYTES, chunks: sealed.length, expiresAt: 0 },
      { kind: "buffer" },
      ["bench"],
    );
    const header = parseHeader(record);
    const opened = await openParsedRecord(header, ["bench"], [...ring], '["bench"]');
    await Promise.all(sealed.map((chunk, i) => opened.openChunk(i, chunk)));
  },
});

// ---------------------------------------------------------------------------
// cryptoKv: a small structured value, sealed in one entry, against plain Deno.Kv.

/** A typical small record: 111 bytes once serialized. */
const SMALL_OBJECT = {
  id: 12_345,
  name: "Ada Lovelace",
  email: "ada@example.com",
  roles: ["admin", "editor"],
  active: true,
  updated: new Date(0),
};
const sealedKv = cryptoKv(smallKv, keys["AES-256"]);
const SMALL_KEYS = 64;
let smallRound = 0;
for (let i = 0; i < SMALL_KEYS; i++) {
  await smallKv.set(["bench", "small", "plain", i], SMALL_OBJECT);
  await sealedKv.set(["bench", "small", "sealed", i], SMALL_OBJECT);
}

Deno.bench({
  name: "Deno.Kv set ~100-byte object",
  group: "small object set",
  baseline: true,
  async fn() {
    await smallKv.set(["bench", "small", "plain", smallRound++ % SMALL_KEYS], SMALL_OBJECT);
  },
});
Deno.bench({
  name: "cryptoKv set ~100-byte object",
  group: "small object set",
  async fn() {
    await sealedKv.set(["bench", "small", "sealed", smallRound++ % SMALL_KEYS], SMALL_OBJECT);
  },
});
/** GCM's tag, which `node:crypto` hands over apart from the ciphertext. */
const TAG_BYTES = 128 / 8;
/** The additional data the floors bind, as KVV1 binds its KV key. */
function floorAad(key: Deno.KvKey): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify(key));
}

function serialized(value: unknown): Uint8Array<ArrayBuffer> {
  const serializer = new v8.Serializer();
  serializer.writeHeader();
  serializer.writeValue(value);
  return owned(serializer.releaseBuffer());
}

/**
 * The floor of an encrypted small value: the same work without the library
 * (V8 serialization, one AES-256-GCM seal with a fresh IV and the key as
 * additional data, one `Deno.Kv` set of the bytes), so the cryptoKv row can be
 * read against what encryption itself costs; with Web Crypto or `node:crypto`.
 */
const sealFloor = {
  async webCrypto(
    value: unknown,
    key: Deno.KvKey,
    iv: Uint8Array<ArrayBuffer> = crypto.getRandomValues(new Uint8Array(12)),
  ): Promise<Uint8Array> {
    const params = { name: "AES-GCM", iv, additionalData: floorAad(key) };
    return new Uint8Array(await crypto.subtle.encrypt(params, rawAesKey, serialized(value)));
  },
  nodeCrypto(value: unknown, key: Deno.KvKey): Uint8Array {
    const cipher = createCipheriv(
      "aes-256-gcm",
      rawKeyBytes,
      crypto.getRandomValues(new Uint8Array(12)),
    );
    cipher.setAAD(floorAad(key));
    const sealed = cipher.update(serialized(value));
    cipher.final();
    const out = new Uint8Array(sealed.length + TAG_BYTES);
    out.set(sealed);
    out.set(cipher.getAuthTag(), sealed.length);
    return out;
  },
};
/** The floor of reading one: a `Deno.Kv` get, one AES-256-GCM open with the key as additional data, deserialization. */
const openFloor = {
  async webCrypto(key: Deno.KvKey, sealed: Uint8Array<ArrayBuffer>): Promise<unknown> {
    const params = { name: "AES-GCM", iv: FLOOR_IV, additionalData: floorAad(key) };
    return v8.deserialize(new Uint8Array(await crypto.subtle.decrypt(params, rawAesKey, sealed)));
  },
  nodeCrypto(key: Deno.KvKey, sealed: Uint8Array): unknown {
    const decipher = createDecipheriv("aes-256-gcm", rawKeyBytes, FLOOR_IV);
    decipher.setAAD(floorAad(key));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const opened = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
    decipher.final();
    return v8.deserialize(opened);
  },
};
const FLOOR_IV = new Uint8Array(12);
const floorKey = (i: number): Deno.KvKey => ["bench", "small", "floor", i];
for (let i = 0; i < SMALL_KEYS; i++) {
  await smallKv.set(floorKey(i), await sealFloor.webCrypto(SMALL_OBJECT, floorKey(i), FLOOR_IV));
}
const FLOOR_NAMES = { webCrypto: "Web Crypto", nodeCrypto: "node:crypto" } as const;

for (const [via, name] of Object.entries(FLOOR_NAMES) as [keyof typeof FLOOR_NAMES, string][]) {
  Deno.bench({
    name: `floor (${name}): serialize + AES-256-GCM + Deno.Kv set ~100-byte object`,
    group: "small object set",
    async fn() {
      const key = ["bench", "small", "floor-set", smallRound++ % SMALL_KEYS];
      await smallKv.set(key, await sealFloor[via](SMALL_OBJECT, key));
    },
  });
}
Deno.bench({
  name: "Deno.Kv get ~100-byte object",
  group: "small object get",
  baseline: true,
  async fn() {
    const entry = await smallKv.get(["bench", "small", "plain", smallRound++ % SMALL_KEYS]);
    if (entry.value === null) throw new Error("missing");
  },
});
Deno.bench({
  name: "cryptoKv get ~100-byte object",
  group: "small object get",
  async fn() {
    const entry = await sealedKv.get(["bench", "small", "sealed", smallRound++ % SMALL_KEYS]);
    if (entry.value === null) throw new Error("missing");
  },
});
for (const [via, name] of Object.entries(FLOOR_NAMES) as [keyof typeof FLOOR_NAMES, string][]) {
  Deno.bench({
    name: `floor (${name}): Deno.Kv get + AES-256-GCM + deserialize ~100-byte object`,
    group: "small object get",
    async fn() {
      const key = floorKey(smallRound++ % SMALL_KEYS);
      const entry = await smallKv.get<Uint8Array<ArrayBuffer>>(key);
      if (await openFloor[via](key, entry.value!) === null) throw new Error("missing");
    },
  });
}
