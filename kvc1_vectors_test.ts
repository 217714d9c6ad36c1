/**
 * Fixed vectors for the KVC1 format (FORMAT.md, "Encrypted record, KVC1"), from
 * `testdata/kvc1_vectors.json` (regenerate with `testdata/make_kvc1_vectors.ts`):
 *
 * 1. the library rebuilds every vector byte for byte from its fixed inputs;
 * 2. an independent decryptor written here from FORMAT.md alone (plain
 *    Web Crypto, no kvcrypt crypto code) opens every vector;
 * 3. the public `get()` reads every vector stored in KV by hand.
 */

import assert from "node:assert/strict";
import { get, getMeta } from "./blob.ts";
import { DecryptionError } from "./crypto.ts";
import { generateKey, importKey } from "./keys.ts";
import {
  buildVector,
  type ChunkJson,
  fromHex,
  importRawKek,
  keyOf,
  plaintextOf,
  sha256Hex,
  type Vector,
  type VectorFile,
} from "./_testing/kvc1_vectors.ts";
import { assertRejects, withKv } from "./_testing/util.ts";

const file: VectorFile = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/kvc1_vectors.json", import.meta.url)),
);
const vectors = file.vectors;

function b64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.fromBase64(text);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (sameBytes(actual, expected)) return;
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.fail(
    `${what}: ${actual.length} bytes, expected ${expected.length}; first difference at ${
      at === -1 ? Math.min(actual.length, expected.length) : at
    }`,
  );
}

Deno.test("kvc1 vectors: the file covers the cases the format must pin down", () => {
  const names = vectors.map((vector) => vector.name);
  assert.equal(new Set(names).size, names.length, "vector names are unique");
  for (const bits of [128, 256]) {
    for (const size of [0, 1, 65_520, 3 * 65_520 + 1_000]) {
      assert.ok(
        vectors.some((vector) =>
          vector.inputs.recipients[0]!.bits === bits && vector.inputs.recipients.length === 1 &&
          plaintextOf(vector.inputs.plaintext).length === size
        ),
        `AES-${bits} vector of ${size} bytes`,
      );
    }
  }
  assert.ok(vectors.some((vector) => vector.inputs.recipients.length === 2), "two recipients");
  const keyParts = vectors.flatMap((vector) => keyOf(vector.inputs.key));
  assert.ok(keyParts.some((part) => typeof part === "string"));
  assert.ok(keyParts.some((part) => typeof part === "number"));
  assert.ok(keyParts.some((part) => part instanceof Uint8Array));
  // The largest vector keeps chunk hashes and its tail's bytes only.
  assert.ok(vectors.some((vector) => vector.expected.chunks.some((chunk) => !chunk.base64)));
});

// ---------------------------------------------------------------------------
// Test 1: the library rebuilds every vector exactly.

Deno.test("kvc1 vectors: the library rebuilds every record and chunk byte for byte", async () => {
  for (const vector of vectors) {
    const { inputs, expected } = vector;
    assert.equal(await sha256Hex(plaintextOf(inputs.plaintext)), inputs.plaintextSha256);
    const built = await buildVector(inputs);
    assert.equal(built.encodedKey.toHex(), expected.encodedKey, `${vector.name}: encodeKey`);
    assert.equal(built.n0.toHex(), expected.n0, `${vector.name}: N0`);
    assert.equal(built.commitment.toHex(), expected.commitment, `${vector.name}: commitment`);
    assertBytes(built.record, b64(expected.record), `${vector.name}: record`);
    assert.equal(built.inline, expected.inline, `${vector.name}: inline`);
    assert.equal(built.chunks.length, expected.chunks.length, `${vector.name}: chunk count`);
    for (const [index, chunk] of built.chunks.entries()) {
      const want = expected.chunks[index]!;
      assert.equal(want.index, index);
      assert.equal(chunk.length, want.length, `${vector.name}: chunk ${index} length`);
      assert.equal(
        await sha256Hex(new Uint8Array(chunk)),
        want.sha256,
        `${vector.name}: chunk ${index}`,
      );
      if (want.base64 !== undefined) {
        assertBytes(chunk, b64(want.base64), `${vector.name}: chunk ${index}`);
      }
    }
  }
});

// ---------------------------------------------------------------------------
// Test 2: an independent decryptor, written from FORMAT.md only.
// Nothing below calls kvcrypt's crypto or byte code.

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const WRAP_LABEL = encoder.encode("kvcrypt/1 wrap");
const BLOB_LABEL = encoder.encode("kvcrypt/1 blob");

function cat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function u32be(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** encodeKey(K) per FORMAT.md: per part a tag byte, a u32 payload length, the payload. */
function specEncodeKey(key: Deno.KvKey): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  for (const part of key) {
    let tag: number;
    let payload: Uint8Array;
    if (part instanceof Uint8Array) {
      [tag, payload] = [0x01, part];
    } else if (typeof part === "string") {
      [tag, payload] = [0x02, encoder.encode(part)];
    } else if (typeof part === "number") {
      if (Number.isNaN(part)) throw new TypeError("NaN");
      payload = new Uint8Array(8);
      new DataView(payload.buffer).setFloat64(0, part); // -0 stays 0x80 00 …
      tag = 0x03;
    } else if (typeof part === "bigint") {
      const magnitude = part < 0n ? -part : part;
      const bytes: number[] = [];
      for (let rest = magnitude; rest > 0n; rest >>= 8n) bytes.unshift(Number(rest & 0xffn));
      [tag, payload] = [0x04, Uint8Array.of(part < 0n ? 1 : 0, ...bytes)];
    } else if (typeof part === "boolean") {
      [tag, payload] = [0x05, Uint8Array.of(part ? 1 : 0)];
    } else {
      throw new TypeError("unsupported key part");
    }
    parts.push(Uint8Array.of(tag), u32be(payload.length), payload);
  }
  return cat(...parts);
}

Deno.test("kvc1 vectors: the spec's encodeKey written here agrees on tricky parts", () => {
  assert.equal(specEncodeKey([-0]).toHex(), "03" + "00000008" + "8000000000000000");
  assert.equal(specEncodeKey([0]).toHex(), "03" + "00000008" + "0000000000000000");
  assert.equal(specEncodeKey([0n]).toHex(), "04" + "00000001" + "00");
  assert.equal(specEncodeKey([-256n]).toHex(), "04" + "00000003" + "010100");
  assert.equal(
    specEncodeKey([true, "é"]).toHex(),
    "05" + "00000001" + "01" + "02" + "00000002" + "c3a9",
  );
});

interface SpecHeader {
  suite: number;
  id: Uint8Array<ArrayBuffer>;
  commitment: Uint8Array;
  chunkSize: number;
  size: number;
  chunks: number;
  expiresAt: number;
  stanzas: { kid: string; iv: Uint8Array<ArrayBuffer>; wrapped: Uint8Array<ArrayBuffer> }[];
  metaIv: Uint8Array<ArrayBuffer>;
  /** Offset 0 up to and including metaLen: the metadata's AAD prefix. */
  authenticated: Uint8Array;
  meta: Uint8Array<ArrayBuffer>;
  inline: Uint8Array<ArrayBuffer>;
}

/** Parses a KVC1 record by the offsets of FORMAT.md's KVC1 header table. */
function parseByOffsets(record: Uint8Array<ArrayBuffer>): SpecHeader {
  const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
  assert.equal(strictUtf8.decode(record.subarray(0, 4)), "KVC1", "magic");
  const n = record[77]!;
  assert.ok(n >= 1 && n <= 16, "stanza count");
  let offset = 78;
  const stanzas: SpecHeader["stanzas"] = [];
  for (let i = 0; i < n; i++) {
    const kidLen = record[offset]!;
    assert.ok(kidLen <= 64);
    const kid = strictUtf8.decode(record.subarray(offset + 1, offset + 1 + kidLen));
    offset += 1 + kidLen;
    const iv = record.slice(offset, offset + 12);
    const wrapped = record.slice(offset + 12, offset + 12 + 48);
    offset += 60;
    stanzas.push({ kid, iv, wrapped });
  }
  const metaIv = record.slice(offset, offset + 12);
  const metaLen = view.getUint32(offset + 12);
  offset += 16;
  assert.ok(metaLen >= 16 && metaLen <= 2_048 + 16, "metaLen");
  assert.ok(offset + metaLen <= record.length, "meta inside the record");
  return {
    suite: record[4]!,
    id: record.slice(5, 21),
    commitment: record.slice(21, 53),
    chunkSize: view.getUint32(53),
    size: Number(view.getBigUint64(57)),
    chunks: view.getUint32(65),
    expiresAt: Number(view.getBigUint64(69)),
    stanzas,
    metaIv,
    authenticated: record.slice(0, offset),
    meta: record.slice(offset, offset + metaLen),
    inline: record.slice(offset + metaLen),
  };
}

/** HKDF-SHA-256(ikm = S, salt = id, info = "kvcrypt/1 blob" || suite) → Kenc || N0 || commitment. */
async function specDerive(
  secret: Uint8Array<ArrayBuffer>,
  id: Uint8Array<ArrayBuffer>,
  suite: number,
) {
  const keyBytes = { 1: 16, 2: 32 }[suite];
  assert.ok(keyBytes !== undefined, `known suite ${suite}`);
  const ikm = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveBits"]);
  const bits = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: id, info: cat(BLOB_LABEL, Uint8Array.of(suite)) },
      ikm,
      (keyBytes + 12 + 32) * 8,
    ),
  );
  const kencRaw = bits.slice(0, keyBytes);
  return {
    kencRaw,
    kenc: await crypto.subtle.importKey("raw", kencRaw, "AES-GCM", false, ["encrypt", "decrypt"]),
    n0: bits.slice(keyBytes, keyBytes + 12),
    commitment: bits.slice(keyBytes + 12),
  };
}

/** Chunk nonce: N0 XOR be96(i). */
function specNonce(n0: Uint8Array, index: number): Uint8Array<ArrayBuffer> {
  const be96 = new Uint8Array(12);
  let rest = BigInt(index);
  for (let j = 11; j >= 0; j--, rest >>= 8n) be96[j] = Number(rest & 0xffn);
  return Uint8Array.from(n0, (byte, j) => byte ^ be96[j]!);
}

async function gcm(
  op: "encrypt" | "decrypt",
  key: CryptoKey,
  iv: Uint8Array<ArrayBuffer>,
  data: Uint8Array<ArrayBuffer>,
  aad?: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  const params: AesGcmParams = { name: "AES-GCM", iv };
  if (aad !== undefined) params.additionalData = aad;
  return new Uint8Array(await crypto.subtle[op](params, key, data));
}

/** The plaintext of chunk `index`: full chunks of chunkSize, the last one the rest. */
function chunkPlaintext(
  plaintext: Uint8Array,
  chunkSize: number,
  index: number,
): Uint8Array<ArrayBuffer> {
  return plaintext.slice(index * chunkSize, (index + 1) * chunkSize);
}

/**
 * Opens a vector with the spec decryptor and checks every header field
 * against the inputs. Returns the stored chunk bytes (sealing the plaintext
 * with the derived key where the file keeps only a chunk's hash, and checking
 * that hash), for test 3.
 */
async function specOpen(vector: Vector): Promise<Uint8Array<ArrayBuffer>[]> {
  const { inputs, expected, name } = vector;
  const record = b64(expected.record);
  const header = parseByOffsets(record);
  // The plaintext from the file's description, by the formula written there.
  let plaintext: Uint8Array<ArrayBuffer>;
  if ("generator" in inputs.plaintext) {
    assert.equal(inputs.plaintext.generator, "(i * 31 + 7) % 251");
    plaintext = new Uint8Array(inputs.plaintext.length);
    for (let i = 0; i < plaintext.length; i++) plaintext[i] = (i * 31 + 7) % 251;
  } else {
    plaintext = Uint8Array.fromHex(inputs.plaintext.hex);
  }
  assert.equal(await sha256Hex(plaintext), inputs.plaintextSha256, `${name}: plaintext`);

  // Public header fields against the inputs.
  assert.equal(header.suite, inputs.recipients[0]!.bits === 128 ? 0x01 : 0x02, `${name}: suite`);
  assert.equal(header.id.toHex(), inputs.id);
  assert.equal(header.chunkSize, 65_520);
  assert.equal(header.size, plaintext.length);
  assert.equal(header.chunks, Math.ceil(plaintext.length / 65_520));
  assert.equal(header.expiresAt, inputs.expiresAt);
  assert.deepEqual(header.stanzas.map((stanza) => stanza.kid), inputs.recipients.map((r) => r.kid));
  assert.deepEqual(header.stanzas.map((stanza) => stanza.iv.toHex()), inputs.wrapIvs);
  assert.equal(header.metaIv.toHex(), inputs.metaIv);
  assert.equal(header.inline.length > 0, expected.inline, `${name}: inline`);

  // Step 2: every recipient's KEK unwraps the same S.
  for (const [i, recipient] of inputs.recipients.entries()) {
    const kek = await importRawKek(fromHex(recipient.raw));
    const stanza = header.stanzas[i]!;
    const secret = await gcm("decrypt", kek, stanza.iv, stanza.wrapped, cat(WRAP_LABEL, header.id));
    assert.equal(secret.toHex(), inputs.secret, `${name}: S from stanza ${i}`);
  }
  // Step 3: derive, compare the commitment.
  const derived = await specDerive(fromHex(inputs.secret), header.id, header.suite);
  assert.equal(derived.kencRaw.toHex(), expected.kenc, `${name}: Kenc`);
  assert.equal(derived.n0.toHex(), expected.n0, `${name}: N0`);
  assert.equal(derived.commitment.toHex(), expected.commitment, `${name}: expected commitment`);
  assert.equal(header.commitment.toHex(), derived.commitment.toHex(), `${name}: commitment field`);
  // Step 4: the metadata, under AAD = header through metaLen || encodeKey(K).
  const encodedKey = specEncodeKey(keyOf(inputs.key));
  assert.equal(encodedKey.toHex(), expected.encodedKey, `${name}: encodeKey`);
  const metaJson = await gcm(
    "decrypt",
    derived.kenc,
    header.metaIv,
    header.meta,
    cat(header.authenticated, encodedKey),
  );
  assert.deepEqual(JSON.parse(strictUtf8.decode(metaJson)), inputs.meta, `${name}: metadata`);
  // The AAD really covers the key: another key does not open the metadata.
  await assert.rejects(
    gcm(
      "decrypt",
      derived.kenc,
      header.metaIv,
      header.meta,
      cat(header.authenticated, specEncodeKey(["x"])),
    ),
  );

  // Step 5: chunks 0..chunks−1, each with nonce N0 XOR be96(i) and the expected length.
  const stored: Uint8Array<ArrayBuffer>[] = [];
  if (expected.inline) {
    assert.equal(header.chunks, 1);
    assert.equal(expected.chunks.length, 0);
    const opened = await gcm("decrypt", derived.kenc, specNonce(derived.n0, 0), header.inline);
    assertBytes(opened, plaintext, `${name}: inline chunk`);
    return stored;
  }
  assert.equal(header.inline.length, 0, `${name}: nothing after the header`);
  assert.equal(expected.chunks.length, header.chunks, `${name}: chunk entries`);
  for (const [index, chunk] of expected.chunks.entries()) {
    assert.equal(chunk.index, index);
    const want = chunkPlaintext(plaintext, header.chunkSize, index);
    stored.push(await specChunk(chunk, derived.kenc, derived.n0, want, `${name}: chunk ${index}`));
  }
  return stored;
}

/** Opens a chunk kept in full, or seals its plaintext and compares the hash. */
async function specChunk(
  chunk: ChunkJson,
  kenc: CryptoKey,
  n0: Uint8Array,
  want: Uint8Array<ArrayBuffer>,
  what: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const nonce = specNonce(n0, chunk.index);
  assert.equal(chunk.length, want.length + 16, `${what}: length`);
  if (chunk.base64 !== undefined) {
    const bytes = b64(chunk.base64);
    assert.equal(await sha256Hex(bytes), chunk.sha256, `${what}: listed hash`);
    assertBytes(await gcm("decrypt", kenc, nonce, bytes), want, `${what}: opened`);
    return bytes;
  }
  // AES-GCM is deterministic for a key and nonce: sealing the plaintext must give the stored bytes.
  const sealed = await gcm("encrypt", kenc, nonce, want);
  assert.equal(await sha256Hex(sealed), chunk.sha256, `${what}: sealed hash`);
  return sealed;
}

Deno.test("kvc1 vectors: a decryptor written from FORMAT.md opens every vector", async () => {
  let checked = 0;
  for (const vector of vectors) {
    await specOpen(vector);
    checked++;
  }
  assert.equal(checked, vectors.length);
});

// ---------------------------------------------------------------------------
// Test 3: the public reader opens vectors stored by hand.

function recipientKey(recipient: Vector["inputs"]["recipients"][number]) {
  const raw = fromHex(recipient.raw);
  // A bare CryptoKey has the empty kid; otherwise a JWK carries the kid.
  if (recipient.kid === "") return importRawKek(raw);
  const jwk: JsonWebKey & { kid: string } = {
    kty: "oct",
    k: raw.toBase64({ alphabet: "base64url", omitPadding: true }),
    kid: recipient.kid,
  };
  return importKey(jwk);
}

Deno.test("kvc1 vectors: get() reads every vector stored in KV by hand", async () => {
  for (const vector of vectors) {
    const { inputs, expected, name } = vector;
    const chunks = await specOpen(vector);
    const key = keyOf(inputs.key);
    const id = fromHex(inputs.id);
    await withKv(async (kv) => {
      await kv.set(key, b64(expected.record));
      for (const [index, chunk] of chunks.entries()) {
        await kv.set(["__kvcrypt__", "chunk", id, index], chunk);
      }
      const plaintext = plaintextOf(inputs.plaintext);
      for (const recipient of inputs.recipients) {
        const encryptionKey = await recipientKey(recipient);
        const entry = await get(kv, key, { encryptionKey });
        assert.ok(entry.value !== null, `${name}: present`);
        assertBytes(entry.value, plaintext, `${name}: get() with ${JSON.stringify(recipient.kid)}`);

        const stream = (await get(kv, key, { encryptionKey, stream: true })).value;
        assert.ok(stream !== null);
        assertBytes(await new Response(stream).bytes(), plaintext, `${name}: stream`);

        const blob = (await get(kv, key, { encryptionKey, blob: true })).value;
        assert.ok(blob !== null);
        assert.equal(blob.type, inputs.meta.type ?? "");
        if (inputs.meta.kind === "file") {
          assert.ok(blob instanceof File, `${name}: a File`);
          assert.equal(blob.name, inputs.meta.name);
          assert.equal(blob.lastModified, inputs.meta.lastModified);
        } else {
          assert.ok(!(blob instanceof File));
        }

        const meta = (await getMeta(kv, key, { encryptionKey })).value;
        assert.ok(meta !== null && meta.verified && meta.encrypted);
        assert.equal(meta.kind, inputs.meta.kind);
        assert.equal(meta.size, plaintext.length);
        assert.equal(meta.id, inputs.id);
        assert.deepEqual(meta.kids, inputs.recipients.map((r) => r.kid));
        assert.equal(meta.expiresAt, inputs.expiresAt === 0 ? undefined : inputs.expiresAt);
      }
      // And the same bytes refuse a key that is not a recipient.
      const stranger = await generateKey({ kid: inputs.recipients[0]!.kid || "stranger" });
      await assertRejects(get(kv, key, { encryptionKey: stranger }), DecryptionError);
    });
  }
});
