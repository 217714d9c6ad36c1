/**
 * The cache of opened versions (_version_cache.ts): a repeated read of an
 * encrypted blob skips the unwrap and the HKDF, and nothing else: the
 * metadata tag, the user key binding, the reader's key and kid and every
 * chunk are still checked on a hit.
 */

import assert from "node:assert/strict";
import { get, getAsStream, rewrap, set } from "./blob.ts";
import { DecryptionError } from "./crypto.ts";
import { generateKey, importKey, Keyring } from "./keys.ts";
import { parseHeader } from "./_kvc1.ts";
import { VERSION_CACHE_MAX, VersionCache } from "./_version_cache.ts";
import { assertRejects, collect, kvTest, randomBytes } from "./_testing/util.ts";

const KIB = 1024;

/**
 * Counts the version-key derivations while `work` runs: each one (HKDF, then
 * the import of its content key Kenc) imports one AES-GCM key, and nothing
 * else in a read or write does once the caller's keys are imported.
 */
async function countDerivations(work: () => Promise<unknown>): Promise<number> {
  const subtle = crypto.subtle;
  const original = subtle.importKey;
  let count = 0;
  subtle.importKey = function (...args: unknown[]) {
    const algorithm = args[2] as string | { name: string };
    if ((typeof algorithm === "string" ? algorithm : algorithm.name) === "AES-GCM") count++;
    return (original as (...args: unknown[]) => Promise<CryptoKey>).apply(subtle, args);
  } as SubtleCrypto["importKey"];
  try {
    await work();
  } finally {
    subtle.importKey = original;
  }
  return count;
}

/** Flips one bit of the stored record at `at` (a negative index counts from the end). */
async function flipRecordBit(kv: Deno.Kv, key: Deno.KvKey, at: number): Promise<void> {
  const record = (await kv.get<Uint8Array>(key)).value!.slice();
  record[at < 0 ? record.length + at : at]! ^= 1;
  await kv.set(key, record);
}

kvTest(
  "version cache: a second read of an encrypted blob derives no keys, and reads the same bytes",
  async (kv) => {
    const jwk = await generateKey();
    const value = randomBytes(200 * KIB);
    await set(kv, ["cached"], value, { encryptionKey: jwk });
    // A key imported again is another CryptoKey: the writer's cache entry is not its.
    const encryptionKey = await importKey(jwk);
    const first = await countDerivations(() => get(kv, ["cached"], { encryptionKey }));
    assert.equal(first, 1, "the first read unwraps S and runs the HKDF once");
    let read: Uint8Array | null = null;
    const again = await countDerivations(async () => {
      read = (await get(kv, ["cached"], { encryptionKey })).value;
      await collect((await getAsStream(kv, ["cached"], { encryptionKey }))!);
    });
    assert.equal(again, 0, "repeated reads reuse the version keys");
    assert.deepEqual(read, value);
  },
);

kvTest(
  "version cache: the metadata tag is checked on a hit (an edited sealed metadata byte)",
  async (kv) => {
    const encryptionKey = await generateKey();
    await set(kv, ["meta"], randomBytes(100 * KIB), { encryptionKey });
    await get(kv, ["meta"], { encryptionKey });
    // The last byte of a chunked record is the metadata tag: outside the authenticated bytes.
    await flipRecordBit(kv, ["meta"], -1);
    const derivations = await countDerivations(() =>
      assertRejects(get(kv, ["meta"], { encryptionKey }), DecryptionError)
    );
    assert.equal(derivations, 0, "the cache was hit, and the tag still failed");
  },
);

kvTest(
  "version cache: reading back what this process wrote derives no keys, except through a wrapper",
  async (kv) => {
    // Imported before counting: a JWK's own import would count as one more.
    const encryptionKey = await importKey(await generateKey({ kid: "local" }));
    const value = randomBytes(200 * KIB);
    const writes = await countDerivations(() => set(kv, ["mine"], value, { encryptionKey }));
    assert.equal(writes, 1, "the write derives the version keys once");
    let read: Uint8Array | null = null;
    const reads = await countDerivations(async () => {
      read = (await get(kv, ["mine"], { encryptionKey })).value;
    });
    assert.equal(reads, 0, "the read uses the keys the write derived");
    assert.deepEqual(read, value);
    // A key held elsewhere is asked on every read, even right after this process wrote.
    let unwraps = 0;
    const kek = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
      "encrypt",
      "decrypt",
    ]);
    const wrapper = {
      kid: "service",
      async wrap(secret: Uint8Array<ArrayBuffer>, context: Uint8Array<ArrayBuffer>) {
        const iv = crypto.getRandomValues(new Uint8Array(12));
        const sealed = await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: context },
          kek,
          secret,
        );
        return new Uint8Array([...iv, ...new Uint8Array(sealed)]);
      },
      async unwrap(wrapped: Uint8Array<ArrayBuffer>, context: Uint8Array<ArrayBuffer>) {
        unwraps++;
        const opened = await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: wrapped.subarray(0, 12), additionalData: context },
          kek,
          wrapped.subarray(12),
        );
        return new Uint8Array(opened);
      },
    };
    await set(kv, ["wrapped"], value, { encryptionKey: wrapper });
    await get(kv, ["wrapped"], { encryptionKey: wrapper });
    await get(kv, ["wrapped"], { encryptionKey: wrapper });
    assert.equal(unwraps, 2, "every read asks the wrapper");
  },
);

kvTest("version cache: a record copied to another key fails on a hit", async (kv) => {
  const encryptionKey = await generateKey();
  await set(kv, ["a"], randomBytes(100 * KIB), { encryptionKey });
  await get(kv, ["a"], { encryptionKey });
  await kv.set(["b"], (await kv.get(["a"])).value);
  await assertRejects(get(kv, ["b"], { encryptionKey }), DecryptionError);
});

kvTest(
  "version cache: an edited header, another key or a non-matching kid never hit",
  async (kv) => {
    const jwk = await generateKey({ kid: "right" });
    const ring = await importKey(jwk);
    const other = await generateKey({ kid: "right" });
    const value = randomBytes(100 * KIB);
    await set(kv, ["h"], value, { encryptionKey: ring });
    await get(kv, ["h"], { encryptionKey: ring });
    // The same CryptoKey, named with a kid its stanza does not match: refused as without a cache.
    const renamed = new Keyring([{ kid: "wrong", key: ring.current.key }]);
    await assertRejects(get(kv, ["h"], { encryptionKey: renamed }), DecryptionError);
    // Another key with the same kid: the unwrap runs, and fails.
    await assertRejects(get(kv, ["h"], { encryptionKey: other }), DecryptionError);
    // The stanza's iv (after the fixed fields, kidLen and the kid "right"): authenticated
    // bytes that still parse; not found in the cache, and the unwrap fails.
    const before = (await kv.get<Uint8Array>(["h"])).value!;
    await flipRecordBit(kv, ["h"], 78 + 1 + 5);
    await assertRejects(get(kv, ["h"], { encryptionKey: ring }), DecryptionError);
    await kv.set(["h"], before);
    assert.deepEqual((await get(kv, ["h"], { encryptionKey: ring })).value, value);
  },
);

kvTest(
  "version cache: after a rewrap the new header is opened afresh, and chunks are still checked",
  async (kv) => {
    const first = await generateKey({ kid: "one" });
    const second = await importKey(await generateKey({ kid: "two" }));
    const value = randomBytes(3 * 65_520);
    await set(kv, ["r"], value, { encryptionKey: first });
    await get(kv, ["r"], { encryptionKey: first });
    await rewrap(kv, ["r"], { encryptionKey: first, add: [second] });
    const derivations = await countDerivations(async () => {
      assert.deepEqual((await get(kv, ["r"], { encryptionKey: second })).value, value);
    });
    assert.equal(derivations, 1, "a new header, a new entry");
    // A damaged chunk of a cached version is still refused.
    const id = parseHeader((await kv.get<Uint8Array>(["r"])).value!).id;
    const chunkKey = ["__kvcrypt__", "chunk", id, 1];
    const chunk = (await kv.get<Uint8Array>(chunkKey)).value!.slice();
    chunk[0]! ^= 1;
    await kv.set(chunkKey, chunk);
    await assertRejects(get(kv, ["r"], { encryptionKey: second }), DecryptionError);
  },
);

Deno.test("version cache: bounded, least recently used dropped first", async () => {
  const kek = (await importKey(await generateKey())).current.key;
  const cache = new VersionCache<string>(3);
  const id = (n: number) => Uint8Array.of(n, 0, 255);
  const header = (n: number) => Uint8Array.of(n, 1, 2, 3);
  const entry = (n: number) => ({
    authenticated: header(n),
    kek,
    stanza: 0,
    secret: id(n),
    keys: `k${n}`,
  });
  const readKeys = [{ kid: "", key: kek }];
  const find = (n: number) => cache.find(id(n), header(n), readKeys, () => true)?.keys;
  for (const n of [1, 2, 3]) cache.add(id(n), entry(n));
  assert.equal(find(1), "k1"); // 1 is now the most recently used
  cache.add(id(4), entry(4));
  assert.equal(cache.size, 3);
  assert.equal(find(2), undefined, "the least recently used went first");
  assert.deepEqual([find(1), find(3), find(4)], ["k1", "k3", "k4"]);
  assert.equal(cache.find(id(1), header(9), readKeys, () => true), undefined, "other bytes");
  assert.equal(cache.find(id(1), header(1), readKeys, () => false), undefined, "kid refused");
  assert.equal(VERSION_CACHE_MAX, 128);
});
