/**
 * Records kept parsed (_parsed_records.ts): what a write remembers for its
 * record is exactly what parsing the stored bytes gives, for both formats,
 * and a record edited after the write or a read is parsed afresh.
 */

import assert from "node:assert/strict";
import { CorruptBlobError, get, getMeta, set } from "./blob.ts";
import { DecryptionError } from "./crypto.ts";
import { Buffer } from "node:buffer";
import { generateKey, keyring, type KeyWrapper } from "./keys.ts";
import { parsedHeaders, parseHeader, parseRecordHeader } from "./_kvc1.ts";
import { decodePlainRecord, openPlainRecord, parsedPlainRecords } from "./_kvp1.ts";
import { WholeBuffer } from "./_read_protocol.ts";
import type { SetOptions } from "./_types.ts";
import { paddedAesWrapper } from "./_testing/kvc2_vectors.ts";
import { assertRejects, kvTest, randomBytes } from "./_testing/util.ts";

const KIB = 1024;

/** A key held "elsewhere": AES-GCM under a key this test generates, padded to 200 bytes. */
async function wrapper(): Promise<KeyWrapper> {
  const kek = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
  return paddedAesWrapper("kms", kek, 200, () => crypto.getRandomValues(new Uint8Array(12)));
}

/** Chunked values written in ways that change the record: sizes, kinds, expiry. */
function writes(): [string, Uint8Array | File, SetOptions][] {
  const file = new File([randomBytes(100 * KIB)], "report.pdf", {
    type: "application/pdf",
    lastModified: 1_700_000_000_000,
  });
  return [
    ["bytes", randomBytes(64 * KIB), {}],
    ["file", file, {}],
    ["expiring", randomBytes(200 * KIB), { expireIn: 3_600_000 }],
    ["typed", randomBytes(70 * KIB), { type: "image/png", name: "a.png" }],
  ];
}

kvTest("a written KVC1 or KVC2 header is remembered as parsing its bytes gives it", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  const bob = await generateKey({ kid: "bob" });
  const keys: [string, SetOptions][] = [
    ["one key", { encryptionKey: alice }],
    ["two recipients", { recipients: [alice, bob] }],
    ["a wrapper", { encryptionKey: await wrapper() }],
  ];
  for (const [who, keyOptions] of keys) {
    for (const [name, value, options] of writes()) {
      const key = ["doc", who, name];
      await set(kv, key, value, { ...options, ...keyOptions });
      const stored = (await kv.get<Uint8Array>(key)).value!;
      // The first look after the write is the write's own entry.
      assert.deepStrictEqual(
        parseRecordHeader(stored, "doc"),
        parseHeader(stored.slice()),
        `${who}, ${name}`,
      );
    }
  }
});

kvTest("a written KVP1 record is remembered as parsing its bytes gives it", async (kv) => {
  for (const [name, value, options] of writes()) {
    await set(kv, [name], value, options);
    const stored = (await kv.get<Uint8Array>([name])).value!;
    const opened = openPlainRecord(stored, name);
    const parsed = decodePlainRecord(stored.slice());
    const { id, chunkSize, size, chunks, expiresAt, meta, inline } = opened;
    assert.deepStrictEqual({ id, chunkSize, size, chunks, expiresAt, meta, inline }, parsed, name);
  }
});

/** Where `needle` first occurs in `bytes`, or -1. */
function indexOfBytes(bytes: Uint8Array, needle: Uint8Array): number {
  for (let at = 0; at + needle.length <= bytes.length; at++) {
    if (needle.every((byte, i) => bytes[at + i] === byte)) return at;
  }
  return -1;
}

kvTest("a plain record edited after its write is parsed afresh", async (kv) => {
  await set(kv, ["p"], randomBytes(100 * KIB), { type: "text/plain" });
  const stored = (await kv.get<Uint8Array>(["p"])).value!;
  // The metadata JSON's type, changed to another of the same length: still a valid record.
  const at = indexOfBytes(stored, new TextEncoder().encode("text/plain"));
  assert.ok(at > 0);
  const edited = stored.slice();
  edited.set(new TextEncoder().encode("text/plaim"), at);
  await kv.set(["p"], edited);
  const meta = (await getMeta(kv, ["p"])).value;
  assert.ok(meta !== null && !meta.encrypted);
  assert.equal(meta.type, "text/plaim");
  assert.equal((await get(kv, ["p"], { blob: true })).value?.type, "text/plaim");
  // A chunk count that no longer matches the size fails the parse.
  const damaged = stored.slice();
  damaged[4 + 16 + 4 + 8 + 3]! ^= 1;
  await kv.set(["p"], damaged);
  await assertRejects(get(kv, ["p"]), CorruptBlobError);
});

kvTest("an encrypted record edited after its write is parsed and checked afresh", async (kv) => {
  const encryptionKey = await generateKey();
  await set(kv, ["e"], randomBytes(100 * KIB), { encryptionKey });
  const stored = (await kv.get<Uint8Array>(["e"])).value!;
  // Layout fields, a stanza byte, the metadata IV, the sealed metadata.
  for (const at of [30, 57, 80, stored.length - 40, stored.length - 1]) {
    const edited = stored.slice();
    edited[at]! ^= 1;
    await kv.set(["e"], edited);
    await assertRejects(
      get(kv, ["e"], { encryptionKey }),
      DecryptionError,
      undefined,
      `byte ${at}`,
    );
  }
  await kv.set(["e"], stored);
  assert.equal((await get(kv, ["e"], { encryptionKey })).value?.length, 100 * KIB);
});

kvTest("a chunked write is remembered without any read, an inline one is not", async (kv) => {
  const encryptionKey = await generateKey();
  for (
    const [store, options] of [[parsedPlainRecords, {}], [parsedHeaders, {
      encryptionKey,
    }]] as const
  ) {
    const before = store.size;
    await set(kv, ["chunked", before], randomBytes(100 * KIB), options);
    assert.equal(store.size, Math.min(before + 1, 128), "the write itself keeps its record");
    const after = store.size;
    await set(kv, ["inline", before], randomBytes(10), options);
    assert.equal(store.size, after, "an inline record is not kept");
  }
});

kvTest("a wrapper that reuses the Buffer it returns cannot change a stored stanza", async (kv) => {
  const kek = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
  const scratch = Buffer.alloc(12 + 32 + 16);
  const reusing: KeyWrapper = {
    kid: "scratch",
    async wrap(secret, context) {
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const sealed = await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: context },
        kek,
        secret,
      );
      scratch.set(iv);
      scratch.set(new Uint8Array(sealed), 12);
      // The same memory every time: a Buffer's slice() would still view it.
      return scratch;
    },
    async unwrap(wrapped, context) {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: wrapped.subarray(0, 12), additionalData: context },
          kek,
          wrapped.subarray(12),
        ),
      );
    },
  };
  const a = randomBytes(100 * KIB);
  const b = randomBytes(100 * KIB);
  await set(kv, ["a"], a, { encryptionKey: reusing });
  await set(kv, ["b"], b, { encryptionKey: reusing });
  assert.deepEqual((await get(kv, ["a"], { encryptionKey: reusing })).value, a);
  assert.deepEqual((await get(kv, ["b"], { encryptionKey: reusing })).value, b);
});

kvTest("a wrapper whose kid became ill-formed after joining a keyring is refused", async (kv) => {
  const w = await wrapper();
  const ring = await keyring(w);
  (w as { kid: string }).kid = "\uD800x";
  await assertRejects(
    set(kv, ["x"], randomBytes(100 * KIB), { encryptionKey: ring }),
    RangeError,
    /well-formed/,
  );
  assert.equal((await kv.get(["x"])).versionstamp, null);
});

Deno.test("a buffered plain read allocates its buffer only once half of the stated size arrived", () => {
  const chunk = new Uint8Array(1_000).fill(7);
  const plain = new WholeBuffer(10 * chunk.length, false);
  for (let i = 0; i < 4; i++) plain.append(chunk);
  assert.equal(plain.allocated, false, "4 of 10 chunks: a forged size allocates nothing yet");
  plain.append(chunk);
  assert.equal(plain.allocated, true, "half arrived");
  for (let i = 0; i < 5; i++) plain.append(chunk);
  assert.deepEqual(plain.finish(), new Uint8Array(10 * chunk.length).fill(7));
  const sealed = new WholeBuffer(10 * chunk.length, true);
  sealed.append(chunk);
  assert.equal(sealed.allocated, true, "an authenticated size is allocated at once");
  const whole = new WholeBuffer(chunk.length, false);
  whole.append(chunk);
  assert.equal(whole.finish(), chunk, "one chunk owning its buffer is handed out as it is");
});
