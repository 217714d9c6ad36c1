/**
 * Tests of `cryptoKv` and the KVV1 format (FORMAT.md, "Encrypted value,
 * KVV1"): round trips of structured values with AES-128 and
 * AES-256 and key rings; a fixed vector built independently with Web Crypto;
 * a tamper matrix over every field; the authenticated expiry; V8 serializer
 * formats 15 and 16 only; the one-entry size limit; getMany, list, watch and
 * atomic; argument errors and what messages may show.
 */

import assert from "node:assert/strict";
import { serialize as nodeSerialize, Serializer } from "node:v8";
import { generateKey } from "./keys.ts";
import { serializeValue } from "./_kvv1.ts";
import { toHex as hex } from "./_bytes.ts";

/** V8's plain serializer, as KVV1 writes values. */
function serialize(value: unknown): Uint8Array {
  const serializer = new Serializer();
  serializer.writeHeader();
  serializer.writeValue(value);
  return serializer.releaseBuffer();
}
import { set as setBlob } from "./blob.ts";
import { cryptoKv, DecryptionError } from "./crypto.ts";
import { importKey, keyring } from "./keys.ts";
import { sealValue, VALUE_OVERHEAD } from "./_kvv1.ts";
import { assertRejects, kvTest } from "./_testing/util.ts";

// ---------------------------------------------------------------------------
// Helpers.

type Jwk = JsonWebKey & { kid: string; k: string };

const encoder = new TextEncoder();

/** Distinct fixed key bytes per seed. */
function rawKey(bits: 128 | 256, seed: number): Uint8Array {
  return Uint8Array.from({ length: bits / 8 }, (_, i) => (i * 7 + seed * 31 + 1) & 0xff);
}

/** A JWK for raw key bytes, as generateKey() makes them. */
function jwkOf(raw: Uint8Array, kid: string): Jwk {
  return {
    kty: "oct",
    k: raw.toBase64({ alphabet: "base64url", omitPadding: true }),
    alg: raw.length === 16 ? "A128GCM" : "A256GCM",
    kid,
    key_ops: ["encrypt", "decrypt"],
    ext: true,
  };
}

async function aesKey(raw: Uint8Array): Promise<CryptoKey> {
  return await crypto.subtle.importKey("raw", new Uint8Array(raw), "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

async function rawValue(kv: Deno.Kv, key: Deno.KvKey): Promise<Uint8Array> {
  const entry = await kv.get(key);
  assert.ok(entry.value instanceof Uint8Array, "the stored value is bytes");
  return entry.value;
}

/** u64 big-endian. */
function be64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

function join(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * {@linkcode assertRejects} with a DecryptionError naming `keyText`, without
 * any of `secrets` in its message.
 */
async function assertDecryptionError(
  promise: Promise<unknown>,
  keyText: string,
  what: string,
  secrets: readonly string[] = [],
): Promise<DecryptionError> {
  const error = await assertRejects(promise, DecryptionError, undefined, what);
  assert.ok(
    error.message.startsWith(`Cannot decrypt ${keyText}: `),
    `${what}: message "${error.message}"`,
  );
  for (const secret of secrets) {
    assert.ok(!error.message.includes(secret), `${what}: the message shows a secret`);
  }
  return error as DecryptionError;
}

// ---------------------------------------------------------------------------
// Round trips.

/** Structured values, deep-compared after a round trip. */
const VALUES: ReadonlyArray<[string, unknown]> = [
  ["an object", { name: "Ada", age: 36, admin: true }],
  ["an array", [1, "two", [3], { four: 4 }]],
  ["a Map", new Map<unknown, unknown>([["a", 1], [2, { b: [3] }]])],
  ["a Set", new Set([1, "x", 3n])],
  ["a Date", new Date(Date.UTC(2026, 10, 23, 12, 0, 0))],
  ["a bigint", -(2n ** 100n) + 1n],
  ["a Uint8Array", new Uint8Array([0, 1, 2, 253, 254, 255])],
  ["a string", "héllo wörld ✓"],
  ["a number", 3.25],
  ["-0", -0],
  ["NaN", NaN],
  ["null", null],
  ["undefined", undefined],
  ["true", true],
  ["an empty object", {}],
  ["a RegExp", /a+b/gi],
  ["nested", {
    users: [{ id: 1n, tags: new Set(["a"]), seen: new Date(0), blob: new Uint8Array([9]) }],
    index: new Map([["by-name", new Map([["ada", 1]])]]),
    nothing: null,
    missing: undefined,
    nan: NaN,
  }],
];

for (const bits of [128, 256] as const) {
  kvTest(`cryptoKv() set() and get() round-trip structured values with AES-${bits}`, async (kv) => {
    const ckv = cryptoKv(kv, jwkOf(rawKey(bits, 1), "k1"));
    for (const [name, value] of VALUES) {
      const result = await ckv.set(["v", name], value);
      assert.ok(result.ok, name);
      const entry = await ckv.get(["v", name]);
      assert.equal(entry.versionstamp, result.versionstamp, `${name}: versionstamp`);
      assert.deepStrictEqual(entry.value, value, name);
      const stored = await rawValue(kv, ["v", name]);
      assert.equal(new TextDecoder().decode(stored.subarray(0, 4)), "KVV1", `${name}: magic`);
      assert.equal(stored[4], bits === 128 ? 0x01 : 0x02, `${name}: suite`);
    }
  });
}

kvTest("cryptoKv() get() of an absent key returns null value and versionstamp", async (kv) => {
  const entry = await cryptoKv(kv, jwkOf(rawKey(256, 1), "k1")).get(["nothing"]);
  assert.deepStrictEqual(entry, { key: ["nothing"], value: null, versionstamp: null });
});

kvTest("cryptoKv() get() tells a stored null from an absent key", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 1), "k1"));
  await ckv.set(["null"], null);
  const entry = await ckv.get(["null"]);
  assert.equal(entry.value, null);
  assert.equal(typeof entry.versionstamp, "string");
});

kvTest("cryptoKv() set() uses a fresh IV for every write", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 1), "k1"));
  await ckv.set(["a"], "same");
  const first = await rawValue(kv, ["a"]);
  await ckv.set(["a"], "same");
  const second = await rawValue(kv, ["a"]);
  assert.equal(first.length, second.length);
  assert.notEqual(hex(first.subarray(16, 28)), hex(second.subarray(16, 28)), "iv");
  assert.notEqual(hex(first.subarray(28)), hex(second.subarray(28)), "ciphertext");
});

kvTest(
  "cryptoKv() with a keyring reads values written under the old key and writes with the new one",
  async (kv) => {
    const oldJwk = jwkOf(rawKey(128, 2), "old");
    const newJwk = jwkOf(rawKey(256, 3), "new");
    await cryptoKv(kv, oldJwk).set(["doc"], { v: 1 });

    const ring = await keyring(newJwk, oldJwk);
    const rotated = cryptoKv(kv, ring);
    assert.deepStrictEqual((await rotated.get(["doc"])).value, { v: 1 });
    // A JWK Set is the same key ring.
    const set = cryptoKv(kv, { keys: [newJwk, oldJwk] });
    assert.deepStrictEqual((await set.get(["doc"])).value, { v: 1 });

    await rotated.set(["doc"], { v: 2 });
    const stored = await rawValue(kv, ["doc"]);
    assert.equal(stored[4], 0x02, "suite of the new (256-bit) key");
    assert.equal(new TextDecoder().decode(stored.subarray(6, 6 + stored[5]!)), "new");
    assert.deepStrictEqual((await rotated.get(["doc"])).value, { v: 2 });
    // The old key alone cannot read what the new key wrote.
    await assertDecryptionError(cryptoKv(kv, oldJwk).get(["doc"]), '["doc"]', "old key only");
  },
);

kvTest("cryptoKv() matches an empty kid on either side with every key", async (kv) => {
  const raw = rawKey(256, 4);
  const bare = await aesKey(raw);
  // Written with a bare CryptoKey (empty kid), read with a JWK that has a kid.
  await cryptoKv(kv, bare).set(["bare"], "from bare");
  assert.equal((await rawValue(kv, ["bare"]))[5], 0, "empty kid");
  assert.equal((await cryptoKv(kv, jwkOf(raw, "named")).get(["bare"])).value, "from bare");
  // Written with a kid, read with a bare CryptoKey.
  await cryptoKv(kv, jwkOf(raw, "named")).set(["named"], "from named");
  assert.equal((await cryptoKv(kv, bare).get(["named"])).value, "from named");
});

kvTest("cryptoKv() accepts a JSON string and a one-element array as one key ring", async (kv) => {
  const jwk = jwkOf(rawKey(256, 5), "json");
  await cryptoKv(kv, JSON.stringify(jwk)).set(["a"], 1);
  assert.equal((await cryptoKv(kv, [jwk]).get(["a"])).value, 1);
});

// ---------------------------------------------------------------------------
// Fixed vector, built from FORMAT.md with Web Crypto alone.

/** The vector's inputs. */
const VECTOR = {
  raw: Uint8Array.from({ length: 32 }, (_, i) => i),
  kid: "v1",
  iv: Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i),
  key: ["users", 42] as Deno.KvKey,
  /** 2100-01-01T00:00:00Z. */
  expiresAt: 4_102_444_800_000,
  /** V8 serializer format 15 of the one-byte string "hi": version tag, version, kOneByteString, length 2. */
  plaintext: Uint8Array.of(0xff, 0x0f, 0x22, 0x02, 0x68, 0x69),
  /** The record: magic, suite, kidLen, kid, expiresAt, iv, ciphertext (6) and tag (16), pinned. */
  expected: "4b565631" + "02" + "02" + "7631" + "000003bb2cc3d800" + "a0a1a2a3a4a5a6a7a8a9aaab" +
    "19175e2f2da278ddcaa02ec603415463ae921222ca28",
};

/** KVV1 bytes as FORMAT.md gives them: prefix || iv || AES-GCM(KEK, iv, plaintext, AAD). */
async function independentVector(): Promise<Uint8Array> {
  const prefix = join(
    encoder.encode("KVV1"),
    Uint8Array.of(0x02), // AES-256-GCM: a 32-byte key
    Uint8Array.of(VECTOR.kid.length),
    encoder.encode(VECTOR.kid),
    be64(VECTOR.expiresAt),
  );
  // encodeKey(["users", 42]): per part a tag, a u32 length, the payload.
  const encodedKey = join(
    Uint8Array.of(0x02, 0, 0, 0, 5),
    encoder.encode("users"),
    Uint8Array.of(0x03, 0, 0, 0, 8),
    Uint8Array.of(0x40, 0x45, 0, 0, 0, 0, 0, 0), // float64 BE of 42
  );
  const aad = join(encoder.encode("kvcrypt/1 value"), prefix, encodedKey);
  const key = await aesKey(VECTOR.raw);
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: new Uint8Array(VECTOR.iv), additionalData: aad },
    key,
    new Uint8Array(VECTOR.plaintext),
  );
  return join(prefix, VECTOR.iv, new Uint8Array(sealed));
}

kvTest("cryptoKv() writes the exact KVV1 bytes of FORMAT.md (fixed vector)", async (kv) => {
  const expected = await independentVector();
  assert.equal(hex(expected), VECTOR.expected, "the pinned record");
  assert.equal(expected.length, VALUE_OVERHEAD + VECTOR.kid.length + VECTOR.plaintext.length);
  const ring = await importKey(jwkOf(VECTOR.raw, VECTOR.kid));
  const sealed = await sealValue(
    ring.current,
    VECTOR.key,
    VECTOR.plaintext,
    VECTOR.expiresAt,
    () => VECTOR.iv.slice(),
  );
  assert.equal(hex(sealed), hex(expected));

  await kv.set(VECTOR.key, expected);
  const entry = await cryptoKv(kv, ring).get(VECTOR.key);
  assert.equal(entry.value, "hi");
});

kvTest("cryptoKv() set() output opens with plain Web Crypto", async (kv) => {
  const raw = rawKey(128, 6);
  await cryptoKv(kv, jwkOf(raw, "wc")).set(["k", 1n, true], { hello: "world" }, {
    expireIn: 3_600_000,
  });
  const stored = await rawValue(kv, ["k", 1n, true]);
  const prefixLength = 4 + 1 + 1 + 2 + 8;
  const expiresAt = Number(
    new DataView(stored.buffer, stored.byteOffset).getBigUint64(prefixLength - 8),
  );
  assert.ok(Math.abs(expiresAt - (Date.now() + 3_600_000)) < 5_000, "expiresAt ≈ now + expireIn");
  const encodedKey = join(
    Uint8Array.of(0x02, 0, 0, 0, 1),
    encoder.encode("k"),
    Uint8Array.of(0x04, 0, 0, 0, 2, 0, 1), // bigint 1n: sign 0, magnitude 01
    Uint8Array.of(0x05, 0, 0, 0, 1, 1),
  );
  const plaintext = await crypto.subtle.decrypt(
    {
      name: "AES-GCM",
      iv: stored.slice(prefixLength, prefixLength + 12),
      additionalData: join(
        encoder.encode("kvcrypt/1 value"),
        stored.subarray(0, prefixLength),
        encodedKey,
      ),
    },
    await aesKey(raw),
    stored.slice(prefixLength + 12),
  );
  assert.equal(hex(new Uint8Array(plaintext)), hex(serialize({ hello: "world" })));
});

// ---------------------------------------------------------------------------
// Tamper matrix.

/** A stored value with a non-empty kid and expiry, its fields' offsets, and its reader. */
async function tamperFixture(kv: Deno.Kv) {
  const jwk = jwkOf(rawKey(256, 7), "k1");
  const ckv = cryptoKv(kv, jwk);
  const secret = "the secret plaintext";
  await ckv.set(["doc"], { secret }, { expireIn: 3_600_000 });
  const record = await rawValue(kv, ["doc"]);
  const kidEnd = 6 + 2;
  const fields: ReadonlyArray<[string, number, number]> = [
    ["magic", 0, 4],
    ["suite", 4, 5],
    ["kidLen", 5, 6],
    ["kid", 6, kidEnd],
    ["expiresAt", kidEnd, kidEnd + 8],
    ["iv", kidEnd + 8, kidEnd + 20],
    ["ciphertext", kidEnd + 20, record.length - 16],
    ["tag", record.length - 16, record.length],
  ];
  return { jwk, ckv, secret, record, fields };
}

kvTest("cryptoKv() get() rejects a flipped bit in every field with DecryptionError", async (kv) => {
  const { jwk, ckv, secret, record, fields } = await tamperFixture(kv);
  assert.deepStrictEqual((await ckv.get(["doc"])).value, { secret }, "untouched");
  for (const [field, start, end] of fields) {
    for (const at of new Set([start, end - 1])) {
      for (const bit of [0, 7]) {
        const tampered = record.slice();
        tampered[at]! ^= 1 << bit;
        await kv.set(["doc"], tampered);
        await assertDecryptionError(
          ckv.get(["doc"]),
          '["doc"]',
          `${field} byte ${at} bit ${bit}`,
          [jwk.k, secret],
        );
      }
    }
  }
});

kvTest(
  "cryptoKv() get() rejects the other suite byte, truncation and an appended byte",
  async (kv) => {
    const { jwk, ckv, secret, record } = await tamperFixture(kv);
    const cases: Array<[string, Uint8Array]> = [
      [
        "suite 0x01 instead of 0x02",
        join(record.subarray(0, 4), Uint8Array.of(1), record.subarray(5)),
      ],
      ["appended byte", join(record, Uint8Array.of(0))],
      ["empty", new Uint8Array(0)],
    ];
    for (const length of [3, 4, 5, 7, 8, 16, 27, 28, 28 + 15, record.length - 1]) {
      cases.push([`truncated to ${length}`, record.slice(0, length)]);
    }
    for (const [what, bytes] of cases) {
      await kv.set(["doc"], bytes);
      await assertDecryptionError(ckv.get(["doc"]), '["doc"]', what, [jwk.k, secret]);
    }
  },
);

kvTest("cryptoKv() get() rejects a value moved to another key", async (kv) => {
  const { ckv, record } = await tamperFixture(kv);
  for (const key of [["doc2"], ["doc", 0], ["DOC"], [encoder.encode("doc")]] as Deno.KvKey[]) {
    await kv.set(key, record);
    const keyText = key[0] instanceof Uint8Array ? "[<3 bytes>]" : JSON.stringify(key);
    await assertDecryptionError(
      ckv.get(key),
      keyText.replaceAll(",", ", "),
      `moved to ${keyText}`,
    );
  }
});

kvTest("cryptoKv() get() rejects a value whose sealed expiry was stripped", async (kv) => {
  const { ckv, record } = await tamperFixture(kv);
  const stripped = record.slice();
  stripped.fill(0, 8, 16); // expiresAt = 0: "never expires"
  await kv.set(["doc"], stripped); // re-set without its KV expireIn either
  await assertDecryptionError(ckv.get(["doc"]), '["doc"]', "expiry stripped");
});

kvTest(
  "cryptoKv() get() keeps the sealed deadline when the same bytes are re-set without expireIn",
  async (kv) => {
    const jwk = jwkOf(rawKey(256, 8), "k1");
    const ring = await importKey(jwk);
    const past = Date.now() - 1_000;
    const sealed = await sealValue(ring.current, ["old"], serialize("stale"), past);
    await kv.set(["old"], sealed); // no KV expiry: the entry stays in KV
    assert.ok((await kv.get(["old"])).versionstamp !== null, "still in KV");
    const entry = await cryptoKv(kv, jwk).get(["old"]);
    assert.deepStrictEqual(entry, { key: ["old"], value: null, versionstamp: null });
  },
);

kvTest("cryptoKv() get() rejects a plain value or a blob record at the key", async (kv) => {
  const jwk = jwkOf(rawKey(256, 9), "k1");
  const ckv = cryptoKv(kv, jwk);
  const plains: unknown[] = [
    "plain text",
    { a: 1 },
    42,
    null,
    new Uint8Array([1, 2, 3]),
    new Deno.KvU64(5n),
  ];
  for (const value of plains) {
    await kv.set(["plain"], value);
    await assertDecryptionError(ckv.get(["plain"]), '["plain"]', `plain ${String(value)}`);
  }
  await setBlob(kv, ["blob"], new Uint8Array(10), { encryptionKey: jwk });
  await assertDecryptionError(ckv.get(["blob"]), '["blob"]', "an encrypted blob record");
  await setBlob(kv, ["plain-blob"], new Uint8Array(10));
  await assertDecryptionError(ckv.get(["plain-blob"]), '["plain-blob"]', "a plain blob record");
});

kvTest(
  "cryptoKv() get() rejects a wrong key and the right key bytes under another kid",
  async (kv) => {
    const raw = rawKey(256, 10);
    const jwk = jwkOf(raw, "k1");
    await cryptoKv(kv, jwk).set(["doc"], "secret words");
    const readers: Array<[string, Jwk]> = [
      ["another key, same kid", jwkOf(rawKey(256, 11), "k1")],
      ["another key, another kid", jwkOf(rawKey(256, 11), "k2")],
      ["the same bytes under another kid", jwkOf(raw, "k2")],
      ["a 128-bit key with the same kid", jwkOf(rawKey(128, 10), "k1")],
    ];
    for (const [what, reader] of readers) {
      await assertDecryptionError(
        cryptoKv(kv, reader).get(["doc"]),
        '["doc"]',
        what,
        [jwk.k, reader.k, "secret words"],
      );
    }
  },
);

// ---------------------------------------------------------------------------
// Expiry.

kvTest("cryptoKv() get() reads a value past its expiry as absent", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 12), "k1"));
  await ckv.set(["soon"], "gone soon", { expireIn: 20 });
  assert.equal((await ckv.get(["soon"])).value, "gone soon");
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepStrictEqual(await ckv.get(["soon"]), {
    key: ["soon"],
    value: null,
    versionstamp: null,
  });
});

kvTest("cryptoKv() checks the expiry only after authentication", async (kv) => {
  const jwk = jwkOf(rawKey(256, 13), "k1");
  const ring = await importKey(jwk);
  const sealed = await sealValue(ring.current, ["e"], serialize(1), Date.now() - 1_000);
  const tampered = sealed.slice();
  tampered[tampered.length - 1]! ^= 1;
  await kv.set(["e"], tampered);
  // Expired and tampered: the tamper wins, it is not silently "absent".
  await assertDecryptionError(cryptoKv(kv, jwk).get(["e"]), '["e"]', "expired and tampered");
});

kvTest("cryptoKv() set() without expireIn stores a value that no longer expires", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 14), "k1"));
  await ckv.set(["x"], 1, { expireIn: 20 });
  await ckv.set(["x"], 2);
  assert.equal(hex((await rawValue(kv, ["x"])).subarray(8, 16)), "0000000000000000");
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal((await ckv.get(["x"])).value, 2);
});

// ---------------------------------------------------------------------------
// V8 serializer formats.

kvTest("cryptoKv() get() reads V8 serializer formats 15 and 16", async (kv) => {
  const jwk = jwkOf(rawKey(256, 15), "k1");
  const ring = await importKey(jwk);
  const value = { a: 1, m: new Map([["b", 2n]]), d: new Date(5) };
  for (const format of [15, 16]) {
    const plaintext = new Uint8Array(serialize(value));
    plaintext[1] = format;
    await kv.set(["v8"], await sealValue(ring.current, ["v8"], plaintext, 0));
    assert.deepStrictEqual(
      (await cryptoKv(kv, jwk).get(["v8"])).value,
      value,
      `format ${format}`,
    );
  }
});

kvTest("cryptoKv() get() rejects any other V8 serializer format", async (kv) => {
  const jwk = jwkOf(rawKey(256, 16), "k1");
  const ring = await importKey(jwk);
  const cases: Array<[string, Uint8Array]> = [];
  for (const format of [0, 13, 14, 17, 255]) {
    const plaintext = new Uint8Array(serialize({ a: 1 }));
    plaintext[1] = format;
    cases.push([`format ${format}`, plaintext]);
  }
  cases.push(["no version tag", Uint8Array.of(0x49, 0x02)]);
  cases.push(["empty", new Uint8Array(0)]);
  cases.push(["only the tag", Uint8Array.of(0xff)]);
  cases.push(["format 15, truncated", Uint8Array.of(0xff, 0x0f, 0x22, 0x05, 0x68)]);
  for (const [what, plaintext] of cases) {
    await kv.set(["v8"], await sealValue(ring.current, ["v8"], plaintext, 0));
    await assertDecryptionError(cryptoKv(kv, jwk).get(["v8"]), '["v8"]', what);
  }
});

// ---------------------------------------------------------------------------
// Size limit.

kvTest(
  "cryptoKv() set() rejects a value too large for one KV entry and writes nothing",
  async (kv) => {
    const kid = "k1";
    const ckv = cryptoKv(kv, jwkOf(rawKey(256, 17), kid));
    // The largest serialized value that fits: 65,536 minus the fixed bytes and the kid.
    const maxPlaintext = 65_536 - VALUE_OVERHEAD - kid.length;
    const framing = serialize(new Uint8Array(60_000)).length - 60_000;
    const fits = new Uint8Array(maxPlaintext - framing);
    assert.equal(serialize(fits).length, maxPlaintext, "the boundary value");
    await ckv.set(["fits"], fits);
    assert.equal((await rawValue(kv, ["fits"])).length, 65_536);
    assert.deepStrictEqual((await ckv.get(["fits"])).value, fits);

    for (const size of [fits.length + 1, 70_000, 1_000_000]) {
      const error = await assertRejects(ckv.set(["big"], new Uint8Array(size)), RangeError);
      assert.match(
        error.message,
        /^Cannot store \["big"\]: the encrypted value takes \d+ bytes, more than one KV entry holds; store it as a blob with set\(\)$/,
      );
      assert.equal((await kv.get(["big"])).versionstamp, null, `${size}: nothing written`);
    }
  },
);

// ---------------------------------------------------------------------------
// getMany, list, watch, delete.

kvTest("cryptoKv() getMany() decrypts each entry and keeps absent ones", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 18), "k1"));
  await ckv.set(["a"], { n: 1 });
  await ckv.set(["c"], new Set([3]));
  await ckv.set(["expired"], 0, { expireIn: 1 });
  await new Promise((resolve) => setTimeout(resolve, 30));
  const [a, b, c, expired] = await ckv.getMany<[{ n: number }, unknown, Set<number>, number]>(
    [["a"], ["b"], ["c"], ["expired"]],
    { consistency: "eventual" },
  );
  assert.deepStrictEqual(a.value, { n: 1 });
  assert.equal(typeof a.versionstamp, "string");
  assert.deepStrictEqual(b, { key: ["b"], value: null, versionstamp: null });
  assert.deepStrictEqual(c.value, new Set([3]));
  assert.deepStrictEqual(expired, { key: ["expired"], value: null, versionstamp: null });
});

kvTest("cryptoKv() getMany() rejects a plain entry and more than 10 keys", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 19), "k1"));
  await ckv.set(["a"], 1);
  await kv.set(["plain"], "plain");
  await assertDecryptionError(ckv.getMany([["a"], ["plain"]]), '["plain"]', "plain entry");
  const keys = Array.from({ length: 11 }, (_, i) => [i]);
  await assertRejects(ckv.getMany(keys), RangeError);
  await assertRejects(ckv.getMany([["ok"], []]), TypeError);
});

kvTest(
  "cryptoKv() list() decrypts each entry, skips expired ones and resumes from its cursor",
  async (kv) => {
    const ckv = cryptoKv(kv, jwkOf(rawKey(256, 20), "k1"));
    for (let i = 0; i < 5; i++) await ckv.set(["items", i], { i });
    await ckv.set(["items", 2.5], "expires", { expireIn: 1 });
    await new Promise((resolve) => setTimeout(resolve, 30));

    const all = await Array.fromAsync(ckv.list<{ i: number }>({ prefix: ["items"] }));
    assert.deepStrictEqual(all.map((entry) => entry.value), [0, 1, 2, 3, 4].map((i) => ({ i })));
    assert.ok(all.every((entry) => typeof entry.versionstamp === "string"));

    const firstPage = ckv.list<{ i: number }>({ prefix: ["items"] }, { limit: 2 });
    const seen = (await Array.fromAsync(firstPage)).map((entry) => entry.value.i);
    assert.deepStrictEqual(seen, [0, 1]);
    const rest = ckv.list<{ i: number }>({ prefix: ["items"] }, { cursor: firstPage.cursor });
    assert.deepStrictEqual((await Array.fromAsync(rest)).map((entry) => entry.value.i), [2, 3, 4]);

    const reversed = await Array.fromAsync(ckv.list({ prefix: ["items"] }, { reverse: true }));
    assert.deepStrictEqual(reversed.map((entry) => entry.key[1]), [4, 3, 2, 1, 0]);
  },
);

kvTest("cryptoKv() list() rejects a plain entry under the selector", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 21), "k1"));
  await ckv.set(["items", 1], 1);
  await kv.set(["items", 2], "plain");
  const iterator = ckv.list({ prefix: ["items"] });
  assert.equal((await iterator.next()).value?.value, 1);
  await assertDecryptionError(iterator.next(), '["items", 2]', "plain entry in a list");
});

kvTest("cryptoKv() watch() decrypts every snapshot", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 22), "k1"));
  await ckv.set(["w"], { step: 1 });
  const reader = ckv.watch<[{ step: number }, unknown]>([["w"], ["none"]]).getReader();
  try {
    const first = await reader.read();
    assert.ok(!first.done);
    assert.deepStrictEqual(first.value[0].value, { step: 1 });
    assert.deepStrictEqual(first.value[1], { key: ["none"], value: null, versionstamp: null });
    await ckv.set(["w"], { step: 2 });
    const second = await reader.read();
    assert.ok(!second.done);
    assert.deepStrictEqual(second.value[0].value, { step: 2 });
  } finally {
    await reader.cancel();
  }
});

kvTest("cryptoKv() watch() errors the stream on a value that does not decrypt", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 23), "k1"));
  await kv.set(["w"], "plain");
  const reader = ckv.watch([["w"]]).getReader();
  await assertDecryptionError(reader.read(), '["w"]', "watching a plain value");
  assert.throws(() => ckv.watch(Array.from({ length: 11 }, (_, i) => [i])), RangeError);
  assert.throws(() => ckv.watch([["__kvcrypt__", "x"]]), TypeError);
});

kvTest("cryptoKv() delete() removes the value", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 24), "k1"));
  await ckv.set(["d"], 1);
  await ckv.delete(["d"]);
  assert.equal((await kv.get(["d"])).versionstamp, null);
});

// ---------------------------------------------------------------------------
// atomic().

kvTest("cryptoKv() atomic() commits a check, sets and a delete in one commit", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 25), "k1"));
  await ckv.set(["gone"], "bye");
  const counter = await ckv.set(["counter"], 1n);
  const result = await ckv.atomic()
    .check({ key: ["counter"], versionstamp: counter.versionstamp })
    .check({ key: ["new"], versionstamp: null })
    .set(["counter"], 2n)
    .set(["new"], new Map([["x", 1]]), { expireIn: 3_600_000 })
    .delete(["gone"])
    .commit();
  assert.ok(result.ok);
  const [c, n, g] = await ckv.getMany<[bigint, Map<string, number>, unknown]>([
    ["counter"],
    ["new"],
    ["gone"],
  ]);
  assert.equal(c.value, 2n);
  assert.equal(c.versionstamp, result.versionstamp);
  assert.deepStrictEqual(n.value, new Map([["x", 1]]));
  assert.equal(g.versionstamp, null);
  assert.notEqual(hex((await rawValue(kv, ["new"])).subarray(8, 16)), "0000000000000000");
});

kvTest("cryptoKv() atomic() returns ok: false on a failed check and writes nothing", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 26), "k1"));
  await ckv.set(["taken"], "first");
  await ckv.set(["keep"], "kept");
  const result = await ckv.atomic()
    .check({ key: ["taken"], versionstamp: null })
    .set(["taken"], "second")
    .set(["other"], "other")
    .delete(["keep"])
    .commit();
  assert.equal(result.ok, false);
  assert.equal((await ckv.get(["taken"])).value, "first");
  assert.equal((await kv.get(["other"])).versionstamp, null);
  assert.equal((await ckv.get(["keep"])).value, "kept");
});

kvTest(
  "cryptoKv() atomic() create-only check passes over an expired value not yet purged",
  async (kv) => {
    const jwk = jwkOf(rawKey(256, 27), "k1");
    const ckv = cryptoKv(kv, jwk);
    const ring = await importKey(jwk);
    await kv.set(["lease"], await sealValue(ring.current, ["lease"], serialize("old"), 1));
    assert.equal((await ckv.get(["lease"])).versionstamp, null, "reads as absent");
    const result = await ckv.atomic()
      .check({ key: ["lease"], versionstamp: null })
      .set(["lease"], "new")
      .commit();
    assert.ok(result.ok);
    assert.equal((await ckv.get(["lease"])).value, "new");
    // A live value still fails the create-only check.
    const again = await ckv.atomic().check({ key: ["lease"], versionstamp: null }).set(
      ["lease"],
      "newer",
    ).commit();
    assert.equal(again.ok, false);
    // So does one that does not decrypt.
    await kv.set(["plain"], "plain");
    const plain = await ckv.atomic().check({ key: ["plain"], versionstamp: null }).set(
      ["plain"],
      1,
    ).commit();
    assert.equal(plain.ok, false);
  },
);

kvTest("cryptoKv() atomic() commit() rejects a too-large value and writes nothing", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 28), "k1"));
  await ckv.set(["keep"], 1);
  const op = ckv.atomic().set(["small"], 1).set(["big"], new Uint8Array(70_000)).delete(["keep"]);
  await assertRejects(op.commit(), RangeError);
  assert.equal((await kv.get(["small"])).versionstamp, null);
  assert.equal((await ckv.get(["keep"])).value, 1);
});

kvTest("cryptoKv() atomic() serializes values when set() is called", async (kv) => {
  const ckv = cryptoKv(kv, jwkOf(rawKey(256, 29), "k1"));
  const value = { n: 1 };
  const op = ckv.atomic().set(["snap"], value);
  value.n = 2;
  await op.commit();
  assert.deepStrictEqual((await ckv.get(["snap"])).value, { n: 1 });
  assert.throws(() => ckv.atomic().set(["f"], () => 1), TypeError);
  assert.throws(() => ckv.atomic().set(["f"], 1, { expireIn: -1 }), RangeError);
  assert.throws(() => ckv.atomic().check({ key: [], versionstamp: null }), TypeError);
  assert.throws(() => ckv.atomic().delete(["__kvcrypt__"]), TypeError);
});

// ---------------------------------------------------------------------------
// Arguments and messages.

kvTest("cryptoKv() rejects several recipients with TypeError", async (kv) => {
  const ckv = cryptoKv(kv, [jwkOf(rawKey(256, 30), "a"), jwkOf(rawKey(256, 31), "b")]);
  const calls: Array<[string, () => Promise<unknown>]> = [
    ["set", () => ckv.set(["x"], 1)],
    ["get", () => ckv.get(["x"])],
    ["getMany", () => ckv.getMany([["x"]])],
    ["delete", () => ckv.delete(["x"])],
    ["list", () => ckv.list({ prefix: [] }).next()],
    ["atomic", () => ckv.atomic().set(["x"], 1).commit()],
    ["watch", () => ckv.watch([["x"]]).getReader().read()],
  ];
  for (const [what, call] of calls) {
    await assertRejects(
      call(),
      TypeError,
      /^Cannot use several recipients for cryptoKv values; pass one key or one key ring$/,
      what,
    );
  }
  assert.equal((await kv.get(["x"])).versionstamp, null);
});

kvTest(
  "cryptoKv() rejects a key of the wrong type with TypeError, unparsable key text with SyntaxError",
  async (kv) => {
    const hmac = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
    const bad: unknown[] = [
      undefined,
      null,
      42,
      { kty: "oct", k: "AAAA" },
      [],
      hmac,
    ];
    for (const key of bad) {
      const ckv = cryptoKv(kv, key as CryptoKey);
      await assertRejects(ckv.set(["x"], 1), TypeError, undefined, String(key));
      await assertRejects(ckv.get(["x"]), TypeError, undefined, String(key));
    }
    const hex = cryptoKv(kv, "00112233445566778899aabbccddeeff"); // a raw hex key: use importKey()
    await assertRejects(hex.set(["x"], 1), SyntaxError, /raw hex or base64 key/);
    await assertRejects(hex.get(["x"]), SyntaxError, /raw hex or base64 key/);
    assert.throws(
      () => cryptoKv(null as unknown as Deno.Kv, jwkOf(rawKey(256, 1), "k")),
      TypeError,
    );
  },
);

kvTest(
  "cryptoKv() set() rejects bad keys, bad expireIn and values it cannot encrypt",
  async (kv) => {
    const ckv = cryptoKv(kv, jwkOf(rawKey(256, 32), "k1"));
    const badKeys = [[], "x", [NaN], [Symbol("s")], [{}], ["__kvcrypt__", "chunk"]];
    for (const [i, key] of badKeys.entries()) {
      await assertRejects(ckv.set(key as Deno.KvKey, 1), TypeError, undefined, `bad key ${i}`);
      await assertRejects(ckv.get(key as Deno.KvKey), TypeError, undefined, `bad key ${i}`);
    }
    await assertRejects(ckv.set(["x"], 1, { expireIn: "10" as unknown as number }), TypeError);
    for (const expireIn of [0, -1, NaN, Infinity]) {
      await assertRejects(ckv.set(["x"], 1, { expireIn }), RangeError, undefined, String(expireIn));
    }
    await assertRejects(
      ckv.set(["x"], () => 1),
      TypeError,
      /^Cannot store \["x"\]: the value cannot be serialized/,
    );
    await assertRejects(ckv.set(["x"], Symbol("s")), TypeError);
    await assertRejects(ckv.set(["x"], new Deno.KvU64(1n)), TypeError);
    assert.equal((await kv.get(["x"])).versionstamp, null);
  },
);

kvTest(
  "cryptoKv() messages name the key and never contain the JWK's k or the plaintext",
  async (kv) => {
    const jwk = jwkOf(rawKey(256, 33), "k1");
    const ckv = cryptoKv(kv, jwk);
    const plaintext = "top secret plaintext";
    await ckv.set(["users", 7n, true], { plaintext });
    const record = await rawValue(kv, ["users", 7n, true]);
    const errors: Error[] = [];
    const capture = async (promise: Promise<unknown>) => {
      errors.push(await assertRejects(promise, [DecryptionError, RangeError]));
    };
    await capture(cryptoKv(kv, jwkOf(rawKey(256, 34), "k1")).get(["users", 7n, true]));
    await capture(cryptoKv(kv, jwkOf(rawKey(256, 34), "k9")).get(["users", 7n, true]));
    const tampered = record.slice();
    tampered[30]! ^= 1;
    await kv.set(["users", 7n, true], tampered);
    await capture(ckv.get(["users", 7n, true]));
    await capture(ckv.set(["users", 7n, true], new Uint8Array(70_000)));
    await capture(ckv.set(["users", 7n, true], 1, { expireIn: -5 }));
    for (const error of errors) {
      assert.ok(error.message.startsWith("Cannot "), error.message);
      assert.ok(error.message.includes('["users", 7n, true]'), error.message);
      assert.ok(!error.message.includes(jwk.k), "no key material");
      assert.ok(!error.message.includes(plaintext), "no plaintext");
      assert.ok(!JSON.stringify(error).includes(jwk.k), "no key material in the error's fields");
    }
    assert.ok(errors[0] instanceof DecryptionError && errors[0].cause !== undefined, "cause kept");
  },
);

kvTest("cryptoKv() is synchronous and imports its key once, on first use", async (kv) => {
  const subtle = crypto.subtle;
  const original = subtle.importKey;
  let imports = 0;
  subtle.importKey = function (this: SubtleCrypto, ...args: Parameters<typeof original>) {
    imports++;
    return original.apply(this, args);
  } as typeof original;
  try {
    const ckv = cryptoKv(kv, jwkOf(rawKey(256, 35), "k1"));
    assert.equal(imports, 0, "nothing imported by cryptoKv()");
    await Promise.all([ckv.set(["a"], 1), ckv.set(["b"], 2), ckv.get(["c"])]);
    assert.equal((await ckv.get(["b"])).value, 2);
    await ckv.atomic().set(["d"], 4).commit();
    assert.equal(imports, 1, "one import for every call");
  } finally {
    subtle.importKey = original;
  }
});

kvTest("cryptoKv() set() refuses a Blob, File or CryptoKey inside a value", async (kv) => {
  const jwk = await generateKey({ kid: "b" });
  const ckv = cryptoKv(kv, jwk);
  const cryptoKey = await crypto.subtle.generateKey({ name: "AES-GCM", length: 128 }, true, [
    "encrypt",
  ]);
  const values = [
    { file: new File(["important"], "a.txt") },
    [new Blob(["x"])],
    new Map([["k", cryptoKey]]),
  ];
  for (const value of values) {
    await assertRejects(ckv.set(["x"], value), TypeError);
    assert.throws(() => ckv.atomic().set(["x"], value), TypeError); // serialized when added
  }
  assert.equal((await kv.get(["x"])).versionstamp, null, "nothing written");
});

kvTest(
  "cryptoKv() writes typed arrays as V8's own views, readable by any V8 deserializer",
  async (kv) => {
    const value = { bytes: new Uint8Array([1, 2, 3]) };
    const written = serializeValue(value, '["t"]');
    assert.equal(hex(written), hex(serialize(value)), "the plain serializer's bytes");
    assert.notEqual(hex(written), hex(nodeSerialize(value)), "not node:v8's host-object form");
    const jwk = await generateKey({ kid: "t" });
    await cryptoKv(kv, jwk).set(["t"], value);
    assert.deepEqual((await cryptoKv(kv, jwk).get(["t"])).value, value);
  },
);

kvTest("cryptoKv() set() of an unclonable value never shows the value in its error", async (kv) => {
  const ckv = cryptoKv(kv, await generateKey({ kid: "f" }));
  const error = await ckv.set(["f"], {
    f: function secret() {
      return "PLAINTEXT-PW";
    },
  }).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof TypeError);
  assert.ok(!Deno.inspect(error).includes("PLAINTEXT-PW"));
});

kvTest(
  "cryptoKv() refuses an expireIn past Deno KV's latest deadline with the RangeError blobs throw",
  async (kv) => {
    const ckv = cryptoKv(kv, await generateKey({ kid: "e" }));
    for (const expireIn of [2 ** 53, Number.MAX_VALUE]) {
      const pattern = /^Cannot store \["far"\]: expireIn/;
      await assertRejects(
        setBlob(kv, ["far"], new Uint8Array(1), { expireIn }),
        RangeError,
        pattern,
      );
      await assertRejects(ckv.set(["far"], 1, { expireIn }), RangeError, pattern);
      await assertRejects(() => ckv.atomic().set(["far"], 1, { expireIn }), RangeError, pattern);
    }
    assert.equal((await kv.get(["far"])).versionstamp, null, "nothing written");
  },
);
