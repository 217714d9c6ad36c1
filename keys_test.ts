import assert from "node:assert/strict";
import {
  exportKey,
  generateKey,
  importKey,
  type JsonWebKeySet,
  type KeyEntry,
  Keyring,
  keyring,
  keyringFromEnv,
  NotFoundError,
} from "./keys.ts";
import { resolveReadKeys, resolveRecipients } from "./_key_input.ts";
import { get, getMeta, set } from "./blob.ts";
import { cryptoKv } from "./crypto.ts";
import type { EncryptionKey } from "./_types.ts";
import { assertRejects, kvTest } from "./_testing/util.ts";

// ---------------------------------------------------------------------------
// Helpers.

const utf8 = new TextEncoder();

/** Decodes a JWK's `k`. */
function keyBytes(jwk: JsonWebKey): Uint8Array {
  return Uint8Array.fromBase64(jwk.k ?? "", { alphabet: "base64url" });
}

/** Encrypts with one key and decrypts with another: they must be the same key. */
async function assertSameKey(a: CryptoKey, b: CryptoKey): Promise<void> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const plaintext = utf8.encode("kvcrypt round trip");
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, a, plaintext);
  const opened = await crypto.subtle.decrypt({ name: "AES-GCM", iv }, b, sealed);
  assert.deepEqual(new Uint8Array(opened), plaintext);
}

/** {@linkcode assertRejects}, and the error's message contains none of `secrets`. */
async function assertRejectsSafely(
  promise: Promise<unknown>,
  ErrorClass: new (message: string) => Error,
  pattern: RegExp,
  secrets: readonly string[] = [],
): Promise<Error> {
  const caught = await assertRejects(promise, ErrorClass, pattern);
  for (const secret of secrets) {
    if (secret !== "") assert.ok(!caught.message.includes(secret), "message leaks key material");
  }
  return caught;
}

/** An AES-GCM key made with Web Crypto. */
function webKey(
  length: number,
  extractable = true,
  usages: KeyUsage[] = ["encrypt", "decrypt"],
): Promise<CryptoKey> {
  return crypto.subtle.generateKey({ name: "AES-GCM", length }, extractable, usages);
}

// ---------------------------------------------------------------------------
// generateKey().

Deno.test("generateKey() returns a 256-bit JWK with a random 16-hex-character kid by default", async () => {
  const jwk = await generateKey();
  assert.deepEqual(Object.keys(jwk), ["kty", "k", "alg", "kid", "key_ops", "ext"]);
  assert.equal(jwk.kty, "oct");
  assert.equal(jwk.alg, "A256GCM");
  assert.match(jwk.kid, /^[0-9a-f]{16}$/);
  assert.deepEqual(jwk.key_ops, ["encrypt", "decrypt"]);
  assert.equal(jwk.ext, true);
  assert.match(jwk.k ?? "", /^[A-Za-z0-9_-]{43}$/);
  assert.equal(keyBytes(jwk).length, 32);
});

Deno.test("generateKey() returns a 128-bit JWK for bits: 128", async () => {
  const jwk = await generateKey({ bits: 128 });
  assert.equal(jwk.alg, "A128GCM");
  assert.equal(keyBytes(jwk).length, 16);
});

Deno.test("generateKey() returns a fresh key and kid on every call", async () => {
  const [a, b] = await Promise.all([generateKey(), generateKey()]);
  assert.notEqual(a.k, b.k);
  assert.notEqual(a.kid, b.kid);
});

Deno.test("generateKey() uses the given kid, up to 64 UTF-8 bytes", async () => {
  for (const kid of ["", "k1", "x".repeat(64), "é".repeat(32), "🔑".repeat(16)]) {
    assert.equal((await generateKey({ kid })).kid, kid);
  }
});

Deno.test("generateKey() rejects bits other than 128 or 256 with a RangeError", async () => {
  for (const bits of [0, 64, 192, 512, 256.5, "256", null]) {
    await assertRejectsSafely(
      generateKey({ bits: bits as 256 }),
      RangeError,
      /^Cannot generate key: bits must be 128 or 256$/,
    );
  }
});

Deno.test("generateKey() rejects a kid longer than 64 UTF-8 bytes with a RangeError", async () => {
  for (const kid of ["x".repeat(65), "é".repeat(33), "🔑".repeat(16) + "x"]) {
    await assertRejectsSafely(
      generateKey({ kid }),
      RangeError,
      /kid is longer than 64 UTF-8 bytes/,
    );
  }
});

Deno.test("generateKey() rejects a kid that is not a string or not well-formed with a TypeError", async () => {
  await assertRejectsSafely(
    generateKey({ kid: 7 as unknown as string }),
    TypeError,
    /kid must be a string/,
  );
  await assertRejectsSafely(generateKey({ kid: "a\uD800" }), TypeError, /not well-formed/);
  await assertRejectsSafely(
    generateKey({ kid: null as unknown as string }),
    TypeError,
    /kid must be a string/,
  );
});

// ---------------------------------------------------------------------------
// importKey() and exportKey().

for (const bits of [128, 256] as const) {
  Deno.test(`importKey() and exportKey() round-trip a ${bits}-bit key`, async () => {
    const jwk = await generateKey({ bits, kid: `k${bits}` });
    const ring = await importKey(jwk);
    assert.equal(ring.size, 1);
    assert.equal(ring.current.kid, `k${bits}`);
    assert.equal((ring.current.key.algorithm as AesKeyAlgorithm).length, bits);

    // The JWK Web Crypto reads is the same key as the one importKey() made.
    const web = await crypto.subtle.importKey("jwk", jwk, "AES-GCM", true, ["encrypt", "decrypt"]);
    await assertSameKey(ring.current.key, web);
    await assertSameKey(web, ring.current.key);

    // exportKey() gives back the same JWK, and it imports to the same key again.
    const exported = await exportKey(web, jwk.kid);
    assert.deepEqual(exported, jwk);
    const again = await importKey(JSON.stringify(exported));
    await assertSameKey(ring.current.key, again.current.key);
  });
}

Deno.test("importKey() accepts a JWK, a JWK Set and the JSON text of either", async () => {
  const jwk = await generateKey({ kid: "a" });
  const set = { keys: [jwk] };
  for (
    const input of [
      jwk,
      set,
      JSON.stringify(jwk),
      JSON.stringify(set),
      `\n ${JSON.stringify(jwk)}\n`,
    ]
  ) {
    const ring = await importKey(input);
    assert.deepEqual(ring.kids, ["a"]);
  }
});

Deno.test("importKey() keeps a JWK Set's order, current key first", async () => {
  const keys = await Promise.all(["c", "a", "b"].map((kid) => generateKey({ kid })));
  const ring = await importKey({ keys });
  assert.deepEqual(ring.kids, ["c", "a", "b"]);
  assert.equal(ring.current.kid, "c");
  const web = await crypto.subtle.importKey("jwk", keys[0]!, "AES-GCM", false, ["decrypt"]);
  const iv = new Uint8Array(12);
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv },
    ring.current.key,
    new Uint8Array(3),
  );
  await crypto.subtle.decrypt({ name: "AES-GCM", iv }, web, sealed);
});

Deno.test("importKey() gives a JWK without kid the empty kid, and allows several of them", async () => {
  const { kid: _a, ...a } = await generateKey();
  const { kid: _b, ...b } = await generateKey();
  assert.deepEqual((await importKey(a)).kids, [""]);
  assert.deepEqual((await importKey({ keys: [a, b] })).kids, ["", ""]);
});

Deno.test("importKey() accepts alg, use and key_ops when they allow AES-GCM encryption", async () => {
  const jwk = await generateKey({ bits: 128 });
  const { alg: _alg, key_ops: _ops, ext: _ext, ...bare } = jwk;
  for (
    const input of [bare, { ...jwk, use: "enc" }, {
      ...jwk,
      key_ops: ["decrypt", "wrapKey", "encrypt"],
    }]
  ) {
    assert.equal((await importKey(input)).size, 1);
  }
});

Deno.test("importKey() imports keys that are not extractable", async () => {
  const ring = await importKey(await generateKey());
  assert.equal(ring.current.key.extractable, false);
  assert.deepEqual([...ring.current.key.usages].sort(), ["decrypt", "encrypt"]);
  await assertRejectsSafely(
    exportKey(ring.current.key),
    TypeError,
    /^Cannot export key: it is not extractable$/,
  );
});

Deno.test("importKey() rejects every malformed key with a TypeError that never quotes key material", async () => {
  const good = await generateKey({ kid: "good" });
  const k = good.k ?? "";
  const k16 = (await generateKey({ bits: 128 })).k ?? "";
  const k24 = new Uint8Array(24).fill(7).toBase64({ alphabet: "base64url", omitPadding: true });
  const cases: Array<[string, unknown, RegExp]> = [
    ["a key of another type", { ...good, kty: "RSA" }, /kty must be "oct"/],
    ["a key without kty", { k, kid: "x" }, /kty must be "oct"/],
    [
      "an alg of another algorithm",
      { ...good, alg: "HS256" },
      /alg must be "A128GCM" or "A256GCM"/,
    ],
    ["a 192-bit alg", { ...good, alg: "A192GCM" }, /alg must be "A128GCM" or "A256GCM"/],
    [
      "an alg of the wrong length",
      { ...good, alg: "A128GCM" },
      /alg "A128GCM" does not match a 32-byte key/,
    ],
    [
      "a short key labelled 256-bit",
      { ...good, k: k16 },
      /alg "A256GCM" does not match a 16-byte key/,
    ],
    ["a key without k", { kty: "oct", kid: "x" }, /"k" is missing/],
    ["a k that is not a string", { ...good, k: 42 }, /"k" must be a string/],
    [
      "a k in standard base64",
      { ...good, k: k.replaceAll("-", "+").replaceAll("_", "/") + "+" },
      /not unpadded base64url/,
    ],
    ["a padded k", { ...good, k: k16 + "==" }, /not unpadded base64url/],
    ["a k of impossible length", { ...good, k: k.slice(0, 41) }, /not unpadded base64url/],
    ["a non-canonical k", { kty: "oct", k: "AAAAAAAAAAAAAAAAAAAAAB" }, /not canonical base64url/],
    ["a 24-byte key", { kty: "oct", k: k24 }, /"k" must be 16 or 32 bytes, got 24/],
    ["an empty k", { kty: "oct", k: "" }, /"k" must be 16 or 32 bytes, got 0/],
    ["a kid that is not a string", { ...good, kid: 1 }, /kid must be a string/],
    [
      "a kid longer than 64 bytes",
      { ...good, kid: "é".repeat(33) },
      /kid is longer than 64 UTF-8 bytes/,
    ],
    ["a kid that is not well-formed", { ...good, kid: "\uDC00" }, /kid is not well-formed Unicode/],
    ["a signing key", { ...good, use: "sig" }, /use must be "enc"/],
    [
      "key_ops without decrypt",
      { ...good, key_ops: ["encrypt"] },
      /key_ops must include "encrypt" and "decrypt"/,
    ],
    [
      "key_ops that is not an array",
      { ...good, key_ops: "encrypt,decrypt" },
      /key_ops must include/,
    ],
    ["null", null, /expected a JWK or a JWK Set/],
    ["an array", [good], /expected a JWK or a JWK Set/],
    ["a number", 42, /expected a JWK or a JWK Set/],
    ["an empty key set", { keys: [] }, /the key set is empty/],
    ["keys that are not an array", { keys: good }, /keys must be an array of JWKs/],
    ["a key set holding a non-object", { keys: [good, "x"] }, /keys\[1\]: expected a JWK$/],
    [
      "a key set with one bad key",
      { keys: [good, { ...good, kid: "b", alg: "A128GCM" }] },
      /: keys\[1\]: alg "A128GCM"/,
    ],
    [
      "a key set with a duplicate kid",
      { keys: [good, { ...good, k: k16, alg: "A128GCM" }] },
      /kid "good" appears twice/,
    ],
  ];
  for (const [name, input, pattern] of cases) {
    const text = JSON.stringify(input);
    const secrets = [k, k16, k24, text];
    await assertRejectsSafely(importKey(input as JsonWebKey), TypeError, pattern, secrets)
      .catch((error) => assert.fail(`${name}: ${error.message}`));
    await assertRejectsSafely(importKey(text), TypeError, pattern, secrets)
      .catch((error) => assert.fail(`${name} (as JSON): ${error.message}`));
  }
});

Deno.test("importKey() rejects text that is not JSON, pointing at JWKs, without quoting it", async () => {
  const jwk = await generateKey();
  const raw = keyBytes(jwk);
  const cases: Array<[string, RegExp]> = [
    [
      raw.toHex(),
      /looks like a raw hex or base64 key, which is not JSON; import the raw bytes as an AES-GCM CryptoKey .*importKey\(\)$/,
    ],
    [raw.toBase64(), /looks like a raw hex or base64 key/],
    [jwk.k ?? "", /looks like a raw hex or base64 key/],
    [`${raw.toHex()}\n`, /looks like a raw hex or base64 key/],
    [
      `{"kty":"oct","k":"${jwk.k}"`,
      /the text is not JSON; pass a JWK or a JWK Set \(generate one with generateKey\(\)\)$/,
    ],
    [`k=${jwk.k}`, /the text is not JSON/],
    ["", /the text is not JSON/],
  ];
  for (const [text, pattern] of cases) {
    await assertRejectsSafely(importKey(text), SyntaxError, pattern, [
      text.trim(),
      jwk.k ?? "",
      raw.toHex(),
    ]);
  }
});

Deno.test("exportKey() defaults the kid to the empty string", async () => {
  const jwk = await exportKey(await webKey(128));
  assert.equal(jwk.kid, "");
  assert.equal(jwk.alg, "A128GCM");
});

Deno.test("exportKey() rejects a key that is not a usable AES-GCM key with a TypeError", async () => {
  const hmac = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
  const cbc = await crypto.subtle.generateKey({ name: "AES-CBC", length: 256 }, true, [
    "encrypt",
    "decrypt",
  ]);
  await assertRejectsSafely(exportKey(hmac), TypeError, /expected an AES-GCM CryptoKey/);
  await assertRejectsSafely(exportKey(cbc), TypeError, /expected an AES-GCM CryptoKey/);
  await assertRejectsSafely(exportKey({} as CryptoKey), TypeError, /expected an AES-GCM CryptoKey/);
  await assertRejectsSafely(exportKey(await webKey(192)), TypeError, /128 or 256 bits/);
  await assertRejectsSafely(
    exportKey(await webKey(256, true, ["encrypt"])),
    TypeError,
    /"encrypt" and "decrypt"/,
  );
  await assertRejectsSafely(
    exportKey(await webKey(256, false)),
    TypeError,
    /it is not extractable/,
  );
});

Deno.test("exportKey() rejects a bad kid", async () => {
  const key = await webKey(256);
  await assertRejectsSafely(exportKey(key, "x".repeat(65)), RangeError, /longer than 64/);
  await assertRejectsSafely(
    exportKey(key, null as unknown as string),
    TypeError,
    /kid must be a string/,
  );
});

// ---------------------------------------------------------------------------
// keyring() and Keyring.

Deno.test("keyring() puts the first key first and flattens keyrings, sets and strings in order", async () => {
  const [a, b, c, d, e] = await Promise.all(
    ["a", "b", "c", "d", "e"].map((kid) => generateKey({ kid })),
  );
  const ring = await keyring(
    a!,
    await importKey({ keys: [b!, c!] }),
    { keys: [d!] } as JsonWebKeySet,
    JSON.stringify(e),
  );
  assert.deepEqual(ring.kids, ["a", "b", "c", "d", "e"]);
  assert.equal(ring.current.kid, "a");
  assert.equal(ring.size, 5);
});

Deno.test("keyring() gives a CryptoKey the empty kid and keeps the same key object", async () => {
  const key = await webKey(256, false);
  const ring = await keyring(key);
  assert.equal(ring.current.kid, "");
  assert.equal((ring.current as KeyEntry).key, key);
});

Deno.test("keyring() allows several keys with the empty kid", async () => {
  const ring = await keyring(await webKey(256), await webKey(128));
  assert.deepEqual(ring.kids, ["", ""]);
});

Deno.test("keyring() rejects no keys", async () => {
  await assertRejectsSafely(keyring(), TypeError, /^Cannot make a keyring: no key given$/);
});

Deno.test("keyring() rejects two keys with the same kid", async () => {
  const a = await generateKey({ kid: "same" });
  const b = await generateKey({ kid: "same" });
  await assertRejectsSafely(keyring(a, b), TypeError, /kid "same" appears twice/, [
    a.k ?? "",
    b.k ?? "",
  ]);
  const ring = await importKey(a);
  await assertRejectsSafely(keyring(ring, ring), TypeError, /kid "same" appears twice/);
});

Deno.test("keyring() rejects a CryptoKey that is not AES-GCM of 128 or 256 bits for encrypt and decrypt", async () => {
  const hmac = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  await assertRejectsSafely(
    keyring(hmac),
    TypeError,
    /^Cannot use key: expected an AES-GCM CryptoKey$/,
  );
  await assertRejectsSafely(
    keyring(await webKey(192)),
    TypeError,
    /^Cannot use key: .*128 or 256 bits/,
  );
  await assertRejectsSafely(
    keyring(await webKey(256, false, ["decrypt"])),
    TypeError,
    /^Cannot use key: .*usages/,
  );
});

Deno.test("keyring() rejects values that are not keys", async () => {
  const jwk = await generateKey();
  for (const value of [null, undefined, 42, true, [jwk]]) {
    await assertRejectsSafely(
      keyring(value as unknown as CryptoKey),
      TypeError,
      /^Cannot (use|import) key: expected/,
    );
  }
});

Deno.test("Keyring finds keys by kid and iterates current first", async () => {
  const ring = await keyring(await generateKey({ kid: "new" }), await generateKey({ kid: "old" }));
  assert.equal(ring.find("old")?.kid, "old");
  assert.equal(ring.find("missing"), undefined);
  assert.deepEqual([...ring].map((entry) => entry.kid), ["new", "old"]);
  assert.equal(ring.size, 2);
  ring.kids.push("mutated");
  assert.deepEqual(ring.kids, ["new", "old"]);
  assert.ok(Object.isFrozen(ring.current));
});

Deno.test("Keyring never shows key material in JSON, strings or inspect", async () => {
  const jwk = await generateKey({ kid: "visible" });
  const k = jwk.k ?? "";
  const hex = keyBytes(jwk).toHex();
  const ring = await importKey(jwk);
  assert.equal(JSON.stringify(ring), '{"kids":["visible"]}');
  assert.equal(String(ring), "[object Keyring]");
  assert.equal(Deno.inspect(ring), 'Keyring { kids: [ "visible" ] }');
  for (
    const shown of [
      Deno.inspect(ring, { depth: 10, showHidden: true }),
      Deno.inspect([...ring], { depth: 10 }),
    ]
  ) {
    assert.ok(!shown.includes(k) && !shown.includes(hex), shown);
  }
});

Deno.test("Keyring rejects an empty list, a duplicate kid and entries that are not keys", async () => {
  const key = await webKey(256);
  assert.throws(() => new Keyring([]), TypeError);
  assert.throws(() => new Keyring([{ kid: "a", key }, { kid: "a", key }]), /kid "a" appears twice/);
  assert.throws(() => new Keyring([{ kid: "a", key: {} as CryptoKey }]), TypeError);
  assert.throws(() => new Keyring([null as unknown as KeyEntry]), TypeError);
  assert.throws(() => new Keyring([{ kid: "x".repeat(65), key }]), RangeError);
  assert.equal(new Keyring([{ kid: "a", key }]).current.key, key);
});

// ---------------------------------------------------------------------------
// keyringFromEnv().

Deno.test("keyringFromEnv() reads KVCRYPT_KEY by default", async () => {
  const previous = Deno.env.get("KVCRYPT_KEY");
  Deno.env.set("KVCRYPT_KEY", JSON.stringify(await generateKey({ kid: "from-env" })));
  try {
    assert.deepEqual((await keyringFromEnv()).kids, ["from-env"]);
  } finally {
    if (previous === undefined) Deno.env.delete("KVCRYPT_KEY");
    else Deno.env.set("KVCRYPT_KEY", previous);
  }
});

Deno.test("keyringFromEnv() reads a JWK Set from a named variable", async () => {
  const name = "KVCRYPT_TEST_KEY_SET";
  const set = { keys: [await generateKey({ kid: "2" }), await generateKey({ kid: "1" })] };
  Deno.env.set(name, JSON.stringify(set));
  try {
    assert.deepEqual((await keyringFromEnv(name)).kids, ["2", "1"]);
  } finally {
    Deno.env.delete(name);
  }
});

Deno.test("keyringFromEnv() rejects a variable that is not set or is empty", async () => {
  const name = "KVCRYPT_TEST_KEY_UNSET";
  Deno.env.delete(name);
  await assertRejectsSafely(
    keyringFromEnv(name),
    NotFoundError,
    /^Cannot read key: environment variable KVCRYPT_TEST_KEY_UNSET is not set$/,
  );
  Deno.env.set(name, " ");
  try {
    await assertRejectsSafely(keyringFromEnv(name), NotFoundError, /is empty$/);
  } finally {
    Deno.env.delete(name);
  }
});

Deno.test("keyringFromEnv() rejects a bad value naming the variable, never quoting the value", async () => {
  const name = "KVCRYPT_TEST_KEY_BAD";
  const jwk = await generateKey();
  const raw = keyBytes(jwk).toHex();
  try {
    Deno.env.set(name, raw);
    await assertRejectsSafely(
      keyringFromEnv(name),
      SyntaxError,
      /^Cannot import key from environment variable KVCRYPT_TEST_KEY_BAD: .*raw hex/,
      [raw],
    );
    const bad = JSON.stringify({ ...jwk, alg: "A128GCM" });
    Deno.env.set(name, bad);
    await assertRejectsSafely(keyringFromEnv(name), TypeError, /alg/, [bad, jwk.k ?? ""]);
  } finally {
    Deno.env.delete(name);
  }
});

// ---------------------------------------------------------------------------
// resolveRecipients() and resolveReadKeys().

Deno.test("resolveRecipients() makes one keyring of a single key, JWK Set or Keyring", async () => {
  const set = { keys: [await generateKey({ kid: "a" }), await generateKey({ kid: "b" })] };
  const fromSet = await resolveRecipients(set);
  assert.equal(fromSet.length, 1);
  assert.deepEqual(fromSet[0]?.kids, ["a", "b"]);
  assert.equal((await resolveRecipients(await webKey(128))).length, 1);
  assert.equal((await resolveRecipients(JSON.stringify(set))).length, 1);
});

Deno.test("resolveRecipients() makes one keyring per array element", async () => {
  const set = { keys: [await generateKey({ kid: "a" }), await generateKey({ kid: "b" })] };
  const c = await generateKey({ kid: "c" });
  const key = await webKey(256);
  const recipients = await resolveRecipients([set, c, key, JSON.stringify(c)]);
  assert.deepEqual(recipients.map((ring) => ring.kids), [["a", "b"], ["c"], [""], ["c"]]);
  assert.deepEqual(recipients.map((ring) => ring.current.kid), ["a", "c", "", "c"]);
});

Deno.test("resolveRecipients() returns the same Keyring for the same object", async () => {
  const jwk = await generateKey();
  const key = await webKey(256);
  const ring = await importKey(jwk);
  assert.equal((await resolveRecipients(jwk))[0], (await resolveRecipients(jwk))[0]);
  assert.equal((await resolveRecipients(key))[0], (await resolveRecipients([key]))[0]);
  assert.equal((await resolveRecipients(ring))[0], ring);
  const array: EncryptionKey = [jwk, key];
  const [first, second] = await Promise.all([resolveRecipients(array), resolveRecipients(array)]);
  assert.deepEqual(first, second);
  assert.equal(first[0], second[0]);
});

Deno.test("resolveRecipients() returns the same Keyring for the same string", async () => {
  const text = JSON.stringify(await generateKey());
  const first = await resolveRecipients(text);
  const second = await resolveRecipients(`${text}`);
  assert.equal(first[0], second[0]);
});

Deno.test("resolveRecipients() keeps at most 16 strings cached, least recently used out first", async () => {
  const texts = await Promise.all(
    Array.from({ length: 17 }, async () => JSON.stringify(await generateKey())),
  );
  const first = new Map<string, Keyring>();
  for (const text of texts) first.set(text, (await resolveRecipients(text))[0]!);
  // texts[0] was evicted when texts[16] came in; texts[16] is still there.
  assert.equal((await resolveRecipients(texts[16]!))[0], first.get(texts[16]!));
  assert.notEqual((await resolveRecipients(texts[0]!))[0], first.get(texts[0]!));
});

Deno.test("resolveRecipients() does not cache a failed import", async () => {
  const jwk: Record<string, unknown> = { kty: "oct" };
  await assertRejectsSafely(resolveRecipients(jwk as JsonWebKey), TypeError, /"k" is missing/);
  jwk.k = (await generateKey()).k;
  assert.equal((await resolveRecipients(jwk as JsonWebKey))[0]?.size, 1);
});

Deno.test("resolveRecipients() rejects an empty array", async () => {
  await assertRejectsSafely(
    resolveRecipients([]),
    TypeError,
    /^Cannot use encryptionKey: the array is empty$/,
  );
});

Deno.test("resolveRecipients() rejects values that are not keys", async () => {
  const jwk = await generateKey();
  const message =
    "Cannot use encryptionKey: expected a CryptoKey, a JWK, a JWK Set, a JSON string of one, a Keyring, a KeyWrapper, or an array of them";
  for (const value of [null, undefined, 42, true, [null], [[jwk]], [jwk, 1]]) {
    const error = await assertRejectsSafely(
      resolveRecipients(value as EncryptionKey),
      TypeError,
      /encryptionKey/,
    );
    assert.equal(error.message, message);
  }
});

Deno.test("resolveRecipients() rejects a raw hex key, pointing at importKey()", async () => {
  const hex = keyBytes(await generateKey()).toHex();
  await assertRejectsSafely(
    resolveRecipients(hex),
    SyntaxError,
    /not JSON; import the raw bytes .*importKey\(\)/,
    [hex],
  );
});

Deno.test("resolveReadKeys() lists every key of every recipient once, in order", async () => {
  const set = { keys: [await generateKey({ kid: "a" }), await generateKey({ kid: "b" })] };
  const c = await generateKey({ kid: "c" });
  const key = await webKey(256);
  const keys = await resolveReadKeys([set, c, set, key, key]);
  assert.deepEqual(keys.map((entry) => entry.kid), ["a", "b", "c", ""]);
  assert.equal((keys[3] as KeyEntry | undefined)?.key, key);
  assert.deepEqual((await resolveReadKeys(set)).map((entry) => entry.kid), ["a", "b"]);
});

// ---------------------------------------------------------------------------
// The command line.

const KEYS_TS = new URL("./keys.ts", import.meta.url).href;

/** Runs `deno run keys.ts ...args` and returns its exit code and output. */
async function runCli(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", KEYS_TS, ...args],
    cwd: new URL(".", import.meta.url),
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Parses the CLI's single line of JSON output. */
function parseLine(stdout: string): unknown {
  assert.ok(stdout.endsWith("\n"), "output ends with a newline");
  assert.equal(stdout.trimEnd().split("\n").length, 1, "output is one line");
  return JSON.parse(stdout);
}

/** Writes a temporary file and returns its path. */
async function tempFile(text: string): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "kvcrypt_keys_test_", suffix: ".json" });
  await Deno.writeTextFile(path, text);
  return path;
}

Deno.test("keys CLI --help and -h print usage and exit 0", async () => {
  for (const flag of ["--help", "-h"]) {
    const { code, stdout, stderr } = await runCli(flag);
    assert.equal(code, 0);
    assert.match(
      stdout,
      /^Usage: deno run keys\.ts \[--bits 128\|256\] \[--kid ID\] \[--add JWKS_FILE\]/,
    );
    assert.equal(stderr, "");
  }
});

Deno.test("keys CLI prints a 256-bit JWK by default", async () => {
  const { code, stdout, stderr } = await runCli();
  assert.equal(code, 0);
  assert.equal(stderr, "");
  const jwk = parseLine(stdout) as JsonWebKey & { kid: string };
  assert.equal(jwk.kty, "oct");
  assert.equal(jwk.alg, "A256GCM");
  assert.match(jwk.kid, /^[0-9a-f]{16}$/);
  assert.equal(keyBytes(jwk).length, 32);
  assert.equal((await importKey(jwk)).current.kid, jwk.kid);
});

Deno.test("keys CLI --bits 128 prints a 128-bit JWK and --kid sets the kid", async () => {
  const spaced = parseLine((await runCli("--bits", "128", "--kid", "x")).stdout) as JsonWebKey & {
    kid: string;
  };
  assert.equal(spaced.alg, "A128GCM");
  assert.equal(keyBytes(spaced).length, 16);
  assert.equal(spaced.kid, "x");
  const joined = parseLine((await runCli("--bits=128", "--kid=y=z")).stdout) as JsonWebKey & {
    kid: string;
  };
  assert.equal(joined.alg, "A128GCM");
  assert.equal(joined.kid, "y=z");
});

Deno.test("keys CLI --add prints a JWK Set: the new key first, then the file's keys", async () => {
  const old = { keys: [await generateKey({ kid: "old2" }), await generateKey({ kid: "old1" })] };
  const single = await generateKey({ kid: "only" });
  const setFile = await tempFile(JSON.stringify(old, null, 2));
  const singleFile = await tempFile(JSON.stringify(single));
  try {
    const fromSet = parseLine(
      (await runCli("--add", setFile, "--kid", "new")).stdout,
    ) as JsonWebKeySet;
    assert.deepEqual(fromSet.keys.map((jwk) => (jwk as { kid?: string }).kid), [
      "new",
      "old2",
      "old1",
    ]);
    assert.deepEqual(fromSet.keys.slice(1), old.keys);
    assert.equal(fromSet.keys[0]?.alg, "A256GCM");
    assert.deepEqual((await importKey(fromSet)).kids, ["new", "old2", "old1"]);

    const fromSingle = parseLine(
      (await runCli("--add", singleFile, "--bits", "128")).stdout,
    ) as JsonWebKeySet;
    assert.equal(fromSingle.keys.length, 2);
    assert.equal(fromSingle.keys[0]?.alg, "A128GCM");
    assert.deepEqual(fromSingle.keys[1], single);
  } finally {
    await Deno.remove(setFile);
    await Deno.remove(singleFile);
  }
});

Deno.test("keys CLI rejects bad usage with exit code 2 and a message starting with Cannot", async () => {
  const cases: string[][] = [
    ["--nope"],
    ["--secret=abcdef0123456789"],
    ["abcdef0123456789"],
    ["--bits", "512"],
    ["--bits=192"],
    ["--bits"],
    ["--kid"],
    ["--add"],
    ["--bits", "128", "--bits", "256"],
    ["--kid", "é".repeat(33)],
  ];
  for (const args of cases) {
    const { code, stdout, stderr } = await runCli(...args);
    assert.equal(code, 2, args.join(" "));
    assert.equal(stdout, "");
    assert.match(stderr, /^Cannot /);
    assert.match(stderr, /--help/);
    assert.ok(!stderr.includes("abcdef0123456789"), "an argument value is echoed");
  }
});

Deno.test("keys CLI --add fails with exit code 1 without printing the file", async () => {
  const jwk = await generateKey({ kid: "taken" });
  const hex = keyBytes(jwk).toHex();
  const files = {
    hex: await tempFile(hex),
    bad: await tempFile(JSON.stringify({ ...jwk, alg: "A128GCM" })),
    taken: await tempFile(JSON.stringify(jwk)),
  };
  try {
    const cases: Array<[string[], RegExp]> = [
      [["--add", files.hex], /^Cannot import key from ".*": the text looks like a raw hex/],
      [["--add", files.bad], /^Cannot import key from ".*": alg "A128GCM" does not match/],
      [["--add", files.taken, "--kid", "taken"], /^Cannot add key: kid "taken" is already in/],
      [["--add", `${files.hex}.missing`], /^Cannot read ".*\.missing": /],
    ];
    for (const [args, pattern] of cases) {
      const { code, stdout, stderr } = await runCli(...args);
      assert.equal(code, 1, args.join(" "));
      assert.equal(stdout, "");
      assert.match(stderr, pattern);
      assert.ok(!stderr.includes(hex) && !stderr.includes(jwk.k ?? ""), "the file's key is echoed");
    }
  } finally {
    for (const path of Object.values(files)) await Deno.remove(path);
  }
});

Deno.test("resolveRecipients() re-imports a JWK object changed in place", async () => {
  const jwk: JsonWebKey & { kid?: string } = await generateKey({ kid: "v1" });
  const first = await resolveRecipients(jwk);
  assert.equal(first[0]!.current.kid, "v1");
  Object.assign(jwk, await generateKey({ kid: "v2" }));
  const second = await resolveRecipients(jwk);
  assert.equal(second[0]!.current.kid, "v2");
  assert.notEqual(second[0], first[0]);
});

Deno.test("keys CLI --add reads a key file that starts with a byte-order mark", async () => {
  const old = await generateKey({ kid: "bom" });
  const file = await tempFile("\uFEFF" + JSON.stringify(old));
  try {
    const result = await runCli("--add", file, "--kid", "new");
    assert.equal(result.code, 0, result.stderr);
    const set = parseLine(result.stdout) as JsonWebKeySet;
    assert.deepEqual(set.keys.map((jwk) => (jwk as { kid?: string }).kid), ["new", "bom"]);
  } finally {
    await Deno.remove(file);
  }
});

kvTest("a kid starting with U+FEFF round-trips through blobs and cryptoKv", async (kv) => {
  const jwk = await generateKey({ kid: "\uFEFFbom-key" });
  assert.equal(jwk.kid, "\uFEFFbom-key");
  const imported = await importKey(JSON.stringify(jwk));
  for (const encryptionKey of [jwk, imported, await keyring(jwk)]) {
    await set(kv, ["chunked"], new Uint8Array(200_000).fill(7), { encryptionKey });
    assert.equal((await get(kv, ["chunked"], { encryptionKey })).value?.length, 200_000);
    const meta = (await getMeta(kv, ["chunked"])).value!;
    assert.ok(meta.encrypted);
    assert.deepEqual(meta.kids, ["\uFEFFbom-key"]);
    await set(kv, ["inline"], new Uint8Array([1, 2]), { encryptionKey });
    assert.deepEqual((await get(kv, ["inline"], { encryptionKey })).value, new Uint8Array([1, 2]));
    const values = cryptoKv(kv, encryptionKey);
    await values.set(["value"], { hello: "world" });
    assert.deepEqual((await values.get(["value"])).value, { hello: "world" });
  }
});
