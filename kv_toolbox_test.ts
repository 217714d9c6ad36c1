import assert from "node:assert/strict";
import {
  type BlobJSON,
  CryptoKv,
  generateKey,
  get,
  getAsBlob,
  getAsJSON,
  getAsResponse,
  getAsStream,
  getMeta,
  list,
  openCryptoKv,
  remove,
  set,
  toBlob,
  toJSON,
  toValue,
} from "./kv_toolbox.ts";
import { CorruptBlobError, DecryptionError, get as kvcryptGet, importKey } from "./mod.ts";
import { fromHex, toBase64 } from "./_bytes.ts";
import { INTERNAL_PREFIX } from "./_kv_keys.ts";
import { PLAIN_CHUNK_SIZE } from "./_limits.ts";
import { recordMagic } from "./_record.ts";
import {
  assertBytes,
  assertRejects,
  collect,
  kvTest,
  randomBytes,
  streamOf,
  withTempDir,
} from "./_testing/util.ts";

/** Several chunks, so the blob has chunk entries under kvcrypt's prefix. */
const CHUNKED = 2 * PLAIN_CHUNK_SIZE + 7;
/** kv-toolbox's JSON part size. */
const PART = 63_000;

// ---------------------------------------------------------------------------
// Plain blobs.

kvTest("kv-toolbox set/get: every value kind, with kv-toolbox's metadata shapes", async (kv) => {
  const bytes = randomBytes(CHUNKED);
  await set(kv, ["buffer"], bytes);
  await set(kv, ["stream"], streamOf([bytes.subarray(0, 10), bytes.subarray(10)]));
  await set(kv, ["blob"], new Blob([bytes], { type: "image/png" }));
  await set(kv, ["file"], new File([bytes], "a.png", { type: "image/png", lastModified: 42 }));
  const size = CHUNKED;
  const expected = {
    buffer: { kind: "buffer", size },
    stream: { kind: "buffer", size },
    blob: { kind: "blob", type: "image/png", size },
    file: { kind: "file", type: "image/png", lastModified: 42, name: "a.png", size },
  };
  for (const [name, meta] of Object.entries(expected)) {
    const entry = await getMeta(kv, [name]);
    assert.deepEqual(entry.value, meta, name);
    const read = await get(kv, [name]);
    assertBytes(read.value!, bytes, name);
    assert.equal(read.versionstamp, entry.versionstamp);
    assertBytes(await collect((await get(kv, [name], { stream: true })).value!), bytes);
  }
  const file = (await get(kv, ["file"], { blob: true })).value;
  assert.ok(file instanceof File);
  assert.deepEqual([file.name, file.type, file.lastModified], ["a.png", "image/png", 42]);
  const blob = await getAsBlob(kv, ["blob"]);
  assert.ok(blob instanceof Blob && !(blob instanceof File));
  assert.equal(blob.type, "image/png");
});

kvTest("kv-toolbox reads of an absent key give kv-toolbox's null shapes", async (kv) => {
  const none = { key: ["none"], value: null, versionstamp: null };
  assert.deepEqual(await get(kv, ["none"]), none);
  assert.deepEqual(await get(kv, ["none"], { stream: true }), none);
  assert.deepEqual(await get(kv, ["none"], { blob: true }), none);
  assert.deepEqual(await getMeta(kv, ["none"]), none);
  assert.equal(await getAsBlob(kv, ["none"]), null);
  assert.equal(await getAsJSON(kv, ["none"]), null);
  assert.equal((await collect(getAsStream(kv, ["none"]))).length, 0);
  await remove(kv, ["none"]);
});

kvTest("kv-toolbox set stores a view's bytes only, and SharedArrayBuffer contents", async (kv) => {
  const whole = randomBytes(100);
  await set(kv, ["view"], new DataView(whole.buffer, 10, 20));
  assertBytes((await get(kv, ["view"])).value!, whole.subarray(10, 30));
  const shared = new Uint8Array(new SharedArrayBuffer(5));
  shared.set([1, 2, 3, 4, 5]);
  await set(kv, ["shared"], shared.buffer as SharedArrayBuffer);
  assert.deepEqual((await get(kv, ["shared"])).value, new Uint8Array([1, 2, 3, 4, 5]));
  await assertRejects(() => set(kv, ["bad"], "text" as unknown as Blob), TypeError);
  assert.deepEqual(await get(kv, ["bad"]), { key: ["bad"], value: null, versionstamp: null });
});

kvTest("kv-toolbox getAsStream returns a stream at once, opened on the first read", async (kv) => {
  const bytes = randomBytes(CHUNKED);
  await set(kv, ["a"], bytes);
  const stream = getAsStream(kv, ["a"]);
  assert.ok(stream instanceof ReadableStream, "a stream, not a promise");
  // Replaced before the first read: the stream delivers what is stored when it is read.
  const newer = randomBytes(1_000);
  await set(kv, ["a"], newer);
  assertBytes(await collect(stream), newer);
  assert.throws(() => getAsStream(kv, [{}] as unknown as Deno.KvKey), TypeError);
  await kv.set(["plain value"], 1);
  await assertRejects(() => collect(getAsStream(kv, ["plain value"])), CorruptBlobError);
});

kvTest("kv-toolbox getAsJSON, toJSON and toValue round trip in 63,000-byte parts", async (kv) => {
  const bytes = randomBytes(2 * PART + 1);
  const file = new File([bytes], "f.bin", { type: "application/x-test", lastModified: 7 });
  await set(kv, ["f"], file);
  const stored = await getAsJSON(kv, ["f"]);
  assert.deepEqual(stored?.meta, {
    kind: "file",
    type: "application/x-test",
    lastModified: 7,
    name: "f.bin",
    size: bytes.length,
  });
  assert.equal(stored?.parts.length, 3);
  const fromJson = toValue(stored!);
  assert.ok(fromJson instanceof File);
  assertBytes(await fromJson.bytes(), bytes);
  assert.deepEqual([fromJson.name, fromJson.type, fromJson.lastModified], [
    "f.bin",
    "application/x-test",
    7,
  ]);

  const local = await toJSON(file);
  assert.deepEqual(local.meta, {
    kind: "file",
    type: "application/x-test",
    lastModified: 7,
    name: "f.bin",
  });
  assert.deepEqual(local.parts, stored?.parts);
  const buffer = await toJSON(bytes.subarray(1, PART + 2));
  assert.deepEqual(buffer.meta, { kind: "buffer" });
  assert.deepEqual(buffer.parts.map((part) => part.length), [84_000, 2]);
  assertBytes(toValue(buffer), bytes.subarray(1, PART + 2));
  const blob = toValue(await toJSON(new Blob([bytes], { type: "text/plain" })));
  assert.ok(blob instanceof Blob && !(blob instanceof File));
  assert.equal(blob.type, "text/plain");
  assert.equal(await toBlob("hi").text(), "hi");
  assert.equal(toBlob("hi").type, "text/plain");
});

kvTest("kv-toolbox toValue refuses parts that are not base64url strings", () => {
  const bad = (parts: unknown) => ({ meta: { kind: "buffer" }, parts }) as BlobJSON;
  assert.throws(() => toValue(bad("AQID")), /^TypeError: Cannot convert the JSON/);
  assert.throws(() => toValue(bad([1])), /^TypeError: Cannot convert the JSON/);
  assert.throws(() => toValue(bad(["AQ+D"])), /^SyntaxError: Cannot decode base64url/);
  return Promise.resolve();
});

kvTest(
  "kv-toolbox remove deletes a blob's record and chunks; a non-blob value stays",
  async (kv) => {
    await set(kv, ["a"], randomBytes(CHUNKED));
    assert.ok((await Array.fromAsync(kv.list({ prefix: [INTERNAL_PREFIX, "chunk"] }))).length > 0);
    await remove(kv, ["a"]);
    assert.equal((await get(kv, ["a"])).value, null);
    assert.deepEqual(await Array.fromAsync(kv.list({ prefix: [INTERNAL_PREFIX, "chunk"] })), []);
    await kv.set(["n"], "not a blob");
    await assertRejects(() => remove(kv, ["n"]), CorruptBlobError);
    assert.equal((await kv.get(["n"])).value, "not a blob");
  },
);

// ---------------------------------------------------------------------------
// getAsResponse.

kvTest("kv-toolbox getAsResponse: OK with type and length, no validators", async (kv) => {
  const file = new File(["<b>hi</b>"], "page.txt", { type: "text/plain", lastModified: 9 });
  await set(kv, ["page"], file);
  const response = await getAsResponse(kv, ["page"]);
  assert.equal(response.status, 200);
  assert.equal(response.statusText, "OK");
  assert.equal(response.headers.get("content-type"), "text/plain");
  assert.equal(response.headers.get("content-length"), "9");
  for (const name of ["content-disposition", "etag", "last-modified", "accept-ranges"]) {
    assert.equal(response.headers.get(name), null, name);
  }
  assert.equal(await response.text(), "<b>hi</b>");

  const attached = await getAsResponse(kv, ["page"], {
    contentDisposition: true,
    headers: { "cache-control": "no-store", "content-type": "text/x-mine" },
  });
  assert.match(attached.headers.get("content-disposition")!, /^attachment; filename="page.txt"/);
  assert.equal(attached.headers.get("cache-control"), "no-store");
  assert.equal(
    attached.headers.get("content-type"),
    "text/x-mine",
    "headers replace computed ones",
  );
  await attached.body?.cancel();
});

kvTest(
  "kv-toolbox getAsResponse names downloads of non-files from the key and type",
  async (kv) => {
    await set(kv, ["reports", "q3"], new Blob(["a,b"], { type: "text/csv" }));
    await set(kv, ["bin", new Uint8Array([1])], new Uint8Array([1, 2]));
    await set(kv, ["odd", 'a"b\r\nx: y'], new Blob(["x"], { type: "application/x-unknown" }));
    const name = async (key: Deno.KvKey) => {
      const response = await getAsResponse(kv, key, { contentDisposition: true });
      await response.body?.cancel();
      return response.headers.get("content-disposition");
    };
    assert.match((await name(["reports", "q3"]))!, /^attachment; filename="q3\.csv"/);
    assert.match((await name(["bin", new Uint8Array([1])]))!, /^attachment; filename="file\.bin"/);
    // Stops a key part from closing the quoted name or adding header lines.
    assert.match((await name(["odd", 'a"b\r\nx: y']))!, /^attachment; filename="a_b__x: y\.bin"/);
  },
);

kvTest("kv-toolbox getAsResponse: Not Found with the caller's body and headers", async (kv) => {
  const bare = await getAsResponse(kv, ["none"]);
  assert.deepEqual([bare.status, bare.statusText, [...bare.headers].length], [404, "Not Found", 0]);
  const custom = await getAsResponse(kv, ["none"], {
    notFoundBody: "gone",
    notFoundHeaders: { "content-type": "text/plain" },
  });
  assert.equal(custom.status, 404);
  assert.equal(custom.headers.get("content-type"), "text/plain");
  assert.equal(await custom.text(), "gone");
});

// ---------------------------------------------------------------------------
// list.

/** Blobs in KV order under ["d"], with non-blob values and other blobs' chunks around them. */
async function fillDir(kv: Deno.Kv): Promise<Deno.KvKey[]> {
  const keys: Deno.KvKey[] = [["d", "a"], ["d", "b"], ["d", "c"], ["d", 1], ["d", 2]];
  for (const [index, key] of keys.entries()) {
    await set(kv, key, randomBytes(index * PLAIN_CHUNK_SIZE + 1));
  }
  for (const key of [["d", "a0"], ["d", "b", "x"], ["d", 1.5], ["d", true]]) await kv.set(key, 1);
  await set(kv, ["e"], randomBytes(CHUNKED));
  return keys;
}

kvTest("kv-toolbox list yields meta, bytes, blobs or streams of blobs only", async (kv) => {
  const keys = await fillDir(kv);
  const selector = { prefix: ["d"] };
  const metas = await Array.fromAsync(list(kv, selector));
  assert.deepEqual(metas.map((entry) => entry.key), keys);
  assert.deepEqual(
    metas.map((entry) => entry.value),
    keys.map((_, index) => ({ kind: "buffer", size: index * PLAIN_CHUNK_SIZE + 1 })),
  );
  assert.deepEqual(await Array.fromAsync(list(kv, selector, { meta: true })), metas);
  for (const entry of await Array.fromAsync(list(kv, selector, { bytes: true }))) {
    assertBytes(entry.value, (await get(kv, entry.key)).value!);
  }
  for (const entry of await Array.fromAsync(list(kv, selector, { blob: true }))) {
    assertBytes(await entry.value.bytes(), (await get(kv, entry.key)).value!);
  }
  for (const entry of await Array.fromAsync(list(kv, selector, { stream: true }))) {
    assertBytes(await collect(entry.value), (await get(kv, entry.key)).value!);
  }
  const reversed = await Array.fromAsync(list(kv, selector, { reverse: true }));
  assert.deepEqual(reversed.map((entry) => entry.key), [...keys].reverse());
  for (const kinds of [{ meta: true, bytes: true }, { blob: true, stream: true }]) {
    assert.throws(
      () => list(kv, selector, kinds),
      /^TypeError: Cannot list blobs as more than one/,
    );
  }
});

kvTest("kv-toolbox list pages by limit and cursor; the cursor stays at the end", async (kv) => {
  const keys = await fillDir(kv);
  for (const limit of [1, 2, 3, keys.length]) {
    const seen: Deno.KvKey[] = [];
    let cursor: string | undefined;
    for (let page = 0; page <= keys.length; page++) {
      const iterator = list(kv, { prefix: ["d"] }, { limit, ...(cursor ? { cursor } : {}) });
      const entries = await Array.fromAsync(iterator);
      seen.push(...entries.map((entry) => entry.key));
      if (entries.length < limit) break;
      cursor = iterator.cursor;
      assert.notEqual(cursor, "", "kv-toolbox's cursor is never empty after a blob");
    }
    assert.deepEqual(seen, keys, `limit ${limit}`);
  }
  const fresh = list(kv, { prefix: ["d"] });
  assert.throws(() => fresh.cursor, /^Error: Cannot get the cursor/);
});

// ---------------------------------------------------------------------------
// CryptoKv.

kvTest(
  "CryptoKv round trips every kind in KVC1, readable by kvcrypt with the same key",
  async (kv) => {
    for (const bits of [128, 256] as const) {
      const hex = generateKey(bits);
      assert.match(hex, bits === 128 ? /^[0-9a-f]{32}$/ : /^[0-9a-f]{64}$/);
      const cryptoKv = new CryptoKv(kv, hex);
      const bytes = randomBytes(CHUNKED);
      const file = new File([bytes], "s.bin", { type: "application/x-s", lastModified: 3 });
      const result = await cryptoKv.setBlob(["s", bits], file);
      assert.ok(result.ok);
      assert.equal(recordMagic((await kv.get(["s", bits])).value), "sealed");

      const entry = await cryptoKv.getBlob(["s", bits]);
      assertBytes(entry.value!, bytes);
      assert.equal(entry.versionstamp, result.versionstamp);
      const asFile = (await cryptoKv.getBlob(["s", bits], { blob: true })).value;
      assert.ok(asFile instanceof File && asFile.name === "s.bin" && asFile.lastModified === 3);
      assert.ok((await cryptoKv.getAsBlob(["s", bits])) instanceof File);
      assert.deepEqual((await cryptoKv.getBlobMeta(["s", bits])).value, {
        kind: "file",
        encrypted: true,
        type: "application/x-s",
        lastModified: 3,
        name: "s.bin",
        size: CHUNKED,
      });
      const json = await cryptoKv.getAsJSON(["s", bits]);
      assert.deepEqual(json?.meta, {
        kind: "file",
        type: "application/x-s",
        lastModified: 3,
        name: "s.bin",
      });
      assertBytes(await (toValue(json!) as File).bytes(), bytes);

      const jwk = { kty: "oct", k: toBase64(fromHex(hex), "base64url") };
      const viaKvcrypt = await kvcryptGet(kv, ["s", bits], { encryptionKey: await importKey(jwk) });
      assertBytes(viaKvcrypt.value!, bytes);

      const fromBytes = new CryptoKv(kv, fromHex(hex));
      assertBytes((await fromBytes.getBlob(["s", bits])).value!, bytes);
      await cryptoKv.deleteBlob(["s", bits]);
      assert.equal((await cryptoKv.getBlob(["s", bits])).value, null);
    }
  },
);

kvTest("CryptoKv refuses another key, plaintext blobs and tampered chunks", async (kv) => {
  const cryptoKv = new CryptoKv(kv, generateKey());
  await cryptoKv.setBlob(["s"], randomBytes(CHUNKED));
  await assertRejects(() => new CryptoKv(kv, generateKey()).getBlob(["s"]), DecryptionError);
  // Stops a plaintext blob planted at the key from being taken as the encrypted one.
  await set(kv, ["p"], randomBytes(10));
  await assertRejects(() => cryptoKv.getBlob(["p"]), DecryptionError);
  await assertRejects(() => cryptoKv.getBlobMeta(["p"]), DecryptionError);
  // The plain functions do not return ciphertext.
  await assertRejects(() => get(kv, ["s"]), DecryptionError);
  await assertRejects(() => collect(getAsStream(kv, ["s"])), DecryptionError);
  assert.deepEqual((await getMeta(kv, ["s"])).value, {
    kind: "buffer",
    encrypted: true,
    size: CHUNKED,
  });

  const [chunk] = await Array.fromAsync(
    kv.list<Uint8Array>({ prefix: [INTERNAL_PREFIX, "chunk"] }),
  );
  const tampered = new Uint8Array(chunk!.value);
  tampered[100]! ^= 1;
  await kv.set(chunk!.key, tampered);
  await assertRejects(() => cryptoKv.getBlob(["s"]), DecryptionError);
  await assertRejects(() => cryptoKv.getAsBlob(["s"]), DecryptionError);
});

kvTest(
  "CryptoKv keys: 128 or 256 bits as hex or bytes; 192 bits and Encryptors refused",
  async (kv) => {
    const secret = "00112233445566778899aabbccddeeff0011223344556677";
    const refusals: [unknown, RegExp][] = [
      [secret, /^RangeError: Cannot use a 192-bit key: .*AES-128-GCM or AES-256-GCM/],
      [new Uint8Array(24), /^RangeError: Cannot use a 192-bit key/],
      ["abc", /^SyntaxError: Cannot use the key: it is not a string of hex digit pairs/],
      ["zz".repeat(16), /^SyntaxError: Cannot use the key/],
      ["00".repeat(20), /^RangeError: Cannot use the key: expected 128 or 256 bits, got 160/],
      [new Uint8Array(0), /^RangeError: Cannot use the key/],
      [[1, 2, 3], /^TypeError: Cannot use the key: expected a hex string or a Uint8Array/],
      [
        { encrypt: (m: Uint8Array) => m, decrypt: (m: Uint8Array) => m },
        /^TypeError: Cannot use a custom Encryptor/,
      ],
    ];
    for (const [key, message] of refusals) {
      assert.throws(() => new CryptoKv(kv, key as string), message);
      await assert.rejects(() => openCryptoKv(key as string, ":memory:"), message);
    }
    const error = await assertRejects(
      openCryptoKv(secret, ":memory:"),
      RangeError,
      /^Cannot use a 192-bit key/,
    );
    const message = String(error);
    assert.ok(
      !message.includes(secret) && !message.includes(secret.slice(0, 8)),
      "no key material",
    );
    assert.throws(() => generateKey(192 as 256), /^RangeError: Cannot generate a 192-bit key/);
    assert.throws(() => generateKey(512 as 256), /^RangeError: Cannot generate the key/);
    assert.notEqual(generateKey(), generateKey());
  },
);

Deno.test("openCryptoKv opens a store file and its close() closes it", async () => {
  await withTempDir(async (dir) => {
    const key = generateKey(128);
    const first = await openCryptoKv(key, `${dir}/store.db`);
    await first.setBlob(["a"], new Blob([randomBytes(CHUNKED)]));
    const stored = (await first.getBlob(["a"])).value!;
    first.close();
    const second = await openCryptoKv(key, `${dir}/store.db`);
    assertBytes((await second.getBlob(["a"])).value!, stored);
    second.close();
  });
});
