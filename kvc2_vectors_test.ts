/**
 * Fixed vectors for the KVC2 header (records with KeyWrapper stanzas), from
 * `testdata/kvc2_vectors.json` (regenerate with `testdata/make_kvc2_vectors.ts`):
 *
 * 1. the library rebuilds every vector byte for byte from its fixed inputs;
 * 2. an independent decryptor written here from FORMAT.md's format text
 *    (plain Web Crypto, no kvcrypt crypto code) opens every vector for each
 *    recipient alone;
 * 3. the public `get()` reads every vector stored in KV by hand, with a
 *    KeyWrapper object or the local key;
 * 4. headers a writer never makes are refused.
 */

import assert from "node:assert/strict";
import { fromHex, keyOf, plaintextOf, sha256Hex } from "./_testing/kvc1_vectors.ts";
import {
  buildKvc2,
  type Kvc2File,
  type Kvc2Vector,
  type RecipientJson,
  testWrapper,
} from "./_testing/kvc2_vectors.ts";
import { chunkKey } from "./_kv_keys.ts";
import { get, set } from "./blob.ts";
import { generateKey } from "./keys.ts";
import { DecryptionError } from "./crypto.ts";
import { assertRejects, kvTest, withKv } from "./_testing/util.ts";

const file: Kvc2File = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/kvc2_vectors.json", import.meta.url)),
);
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function b64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.fromBase64(text);
}

Deno.test("kvc2 vectors: the file covers wrapper stanzas, long kids and mixed recipients", () => {
  const forms = file.vectors.map((v) => v.inputs.recipients.map((r) => r.form).join("+"));
  assert.ok(
    forms.includes("wrapper") && forms.includes("wrapper+key") && forms.includes("key+wrapper"),
  );
  assert.ok(file.vectors.some((v) => v.inputs.recipients.some((r) => r.kid.length === 64)));
  const lengths = file.vectors.flatMap((v) =>
    v.inputs.recipients.flatMap((r) => r.form === "wrapper" ? [r.wrappedLength] : [])
  );
  for (const length of [60, 200, 1_024]) assert.ok(lengths.includes(length), `${length} bytes`);
  assert.ok(
    file.vectors.some((v) => v.expected.inline) && file.vectors.some((v) => !v.expected.inline),
  );
});

for (const vector of file.vectors) {
  Deno.test(`kvc2 vector ${vector.name}: the library rebuilds it byte for byte`, async () => {
    const built = await buildKvc2(vector.inputs);
    assert.equal(built.record.toBase64(), vector.expected.record);
    assert.equal(built.inline, vector.expected.inline);
    const hashes = await Promise.all(built.chunks.map((c) => sha256Hex(new Uint8Array(c))));
    assert.deepEqual(hashes, vector.expected.chunkSha256);
  });
}

// ---------------------------------------------------------------------------
// Test 2: an independent decryptor, from FORMAT.md's KVC1 and KVC2 layouts.

interface SpecStanza {
  form: number;
  kid: string;
  iv?: Uint8Array<ArrayBuffer>;
  wrapped: Uint8Array<ArrayBuffer>;
}

/** Parses a KVC2 record field by field (integers big-endian). */
function specParse(record: Uint8Array<ArrayBuffer>) {
  const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
  assert.equal(strictUtf8.decode(record.subarray(0, 4)), "KVC2", "magic");
  const suite = record[4]!;
  const id = record.slice(5, 21);
  const commitment = record.slice(21, 53);
  const chunkSize = view.getUint32(53);
  const size = Number(view.getBigUint64(57));
  const chunks = view.getUint32(65);
  const count = record[77]!;
  assert.ok(count >= 1 && count <= 16, "stanza count 1-16");
  assert.equal(chunks, Math.ceil(size / chunkSize), "chunks = ceil(size / chunkSize)");
  let offset = 78;
  const stanzas: SpecStanza[] = [];
  for (let i = 0; i < count; i++) {
    const form = record[offset++]!;
    const kidLen = record[offset++]!;
    assert.ok(kidLen <= 64, "kidLen 0-64");
    const kid = strictUtf8.decode(record.subarray(offset, offset + kidLen));
    offset += kidLen;
    if (form === 1) {
      const iv = record.slice(offset, offset + 12);
      const wrapped = record.slice(offset + 12, offset + 60);
      offset += 60;
      stanzas.push({ form, kid, iv, wrapped });
    } else {
      assert.equal(form, 2, "stanza form");
      assert.ok(kidLen >= 1, "a wrapper kid of 1-64 bytes");
      const length = view.getUint16(offset);
      assert.ok(length >= 1 && length <= 1_024, "wrappedLen 1-1,024");
      stanzas.push({ form, kid, wrapped: record.slice(offset + 2, offset + 2 + length) });
      offset += 2 + length;
    }
  }
  assert.ok(stanzas.some((stanza) => stanza.form === 2), "a KVC2 header has a wrapper stanza");
  const metaIv = record.slice(offset, offset + 12);
  const metaLen = view.getUint32(offset + 12);
  assert.ok(metaLen >= 16 && offset + 16 + metaLen <= record.length, "metaLen inside the record");
  const aadPrefix = record.slice(0, offset + 16);
  const meta = record.slice(offset + 16, offset + 16 + metaLen);
  const rest = record.slice(offset + 16 + metaLen);
  return { suite, id, commitment, chunkSize, size, chunks, stanzas, metaIv, aadPrefix, meta, rest };
}

/** encodeKey of string parts: tag 0x02, u32 length, UTF-8. */
function specEncodeKey(key: readonly string[]): Uint8Array<ArrayBuffer> {
  const parts = key.flatMap((part) => {
    const bytes = utf8.encode(part);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, bytes.length);
    return [0x02, ...length, ...bytes];
  });
  return new Uint8Array(parts);
}

async function aesOpen(
  raw: Uint8Array<ArrayBuffer>,
  iv: Uint8Array<ArrayBuffer>,
  sealed: Uint8Array<ArrayBuffer>,
  aad?: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["decrypt"]);
  const params: AesGcmParams = { name: "AES-GCM", iv };
  if (aad) params.additionalData = aad;
  return new Uint8Array(await crypto.subtle.decrypt(params, key, sealed));
}

/** S for one recipient alone: its stanza (by kid), unwrapped as FORMAT.md says. */
async function specSecret(
  parsed: ReturnType<typeof specParse>,
  recipient: RecipientJson,
): Promise<Uint8Array<ArrayBuffer>> {
  const stanza = parsed.stanzas.find((s) => s.kid === recipient.kid)!;
  const wrapAad = new Uint8Array([...utf8.encode("kvcrypt/1 wrap"), ...parsed.id]);
  if (recipient.form === "key") {
    assert.equal(stanza.form, 1);
    return await aesOpen(fromHex(recipient.raw), stanza.iv!, stanza.wrapped, wrapAad);
  }
  assert.equal(stanza.form, 2);
  assert.equal(stanza.wrapped.length, recipient.wrappedLength);
  const context = new Uint8Array([...wrapAad, ...utf8.encode(recipient.kid)]);
  const wrapper = await testWrapper(recipient);
  return new Uint8Array(await wrapper.unwrap(stanza.wrapped, context));
}

/** Chunk nonce: N0 XOR be96(i). */
function specNonce(n0: Uint8Array<ArrayBuffer>, index: number): Uint8Array<ArrayBuffer> {
  const nonce = n0.slice();
  const view = new DataView(nonce.buffer);
  view.setUint32(8, view.getUint32(8) ^ index);
  return nonce;
}

/** The one sealed chunk 0 stored after the header. */
async function specInline(
  parsed: ReturnType<typeof specParse>,
  kenc: Uint8Array<ArrayBuffer>,
  n0: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  assert.equal(parsed.chunks, 1, "an inline chunk is the only chunk");
  return await aesOpen(kenc, specNonce(n0, 0), parsed.rest);
}

/**
 * Chunk entries, which the file gives by SHA-256 only: AES-GCM is
 * deterministic for a key and nonce, so sealing each 65,520-byte slice of the
 * plaintext under Kenc and its nonce must give exactly the listed bytes.
 */
async function specChunks(
  parsed: ReturnType<typeof specParse>,
  kenc: Uint8Array<ArrayBuffer>,
  n0: Uint8Array<ArrayBuffer>,
  plaintext: Uint8Array<ArrayBuffer>,
  hashes: readonly string[],
): Promise<void> {
  assert.equal(hashes.length, parsed.chunks, "chunk entries");
  const key = await crypto.subtle.importKey("raw", kenc, "AES-GCM", false, ["encrypt"]);
  for (const [i, hash] of hashes.entries()) {
    const slice = plaintext.slice(i * parsed.chunkSize, (i + 1) * parsed.chunkSize);
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv: specNonce(n0, i) }, key, slice),
    );
    assert.equal(await sha256Hex(sealed), hash, `chunk ${i}`);
  }
}

for (const vector of file.vectors) {
  Deno.test(`kvc2 vector ${vector.name}: a decryptor written from the format text opens it for each recipient`, async () => {
    const record = b64(vector.expected.record);
    const parsed = specParse(record);
    const { inputs } = vector;
    const first = inputs.recipients[0]!;
    assert.equal(parsed.suite, first.form === "key" && first.bits === 128 ? 0x01 : 0x02, "suite");
    const keyBytes = parsed.suite === 0x01 ? 16 : 32;
    const plaintext = plaintextOf(inputs.plaintext);
    for (const recipient of inputs.recipients) {
      const secret = await specSecret(parsed, recipient);
      const ikm = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveBits"]);
      const info: Uint8Array<ArrayBuffer> = new Uint8Array([
        ...utf8.encode("kvcrypt/1 blob"),
        parsed.suite,
      ]);
      const bits: Uint8Array<ArrayBuffer> = new Uint8Array(
        await crypto.subtle.deriveBits(
          { name: "HKDF", hash: "SHA-256", salt: parsed.id, info },
          ikm,
          (keyBytes + 12 + 32) * 8,
        ),
      );
      const kenc = bits.slice(0, keyBytes);
      const n0 = bits.slice(keyBytes, keyBytes + 12);
      assert.deepEqual(bits.slice(keyBytes + 12), parsed.commitment, "commitment");
      const metaAad = new Uint8Array([
        ...parsed.aadPrefix,
        ...specEncodeKey(inputs.key as string[]),
      ]);
      const meta = JSON.parse(
        strictUtf8.decode(await aesOpen(kenc, parsed.metaIv, parsed.meta, metaAad)),
      );
      assert.deepEqual(meta, inputs.meta, `${recipient.kid}: metadata`);
      assert.equal(parsed.size, plaintext.length, "size");
      assert.equal(parsed.chunkSize, 65_520, "chunkSize");
      if (parsed.rest.length > 0) {
        const opened = await specInline(parsed, kenc, n0);
        assert.deepEqual(opened, plaintext, `${recipient.kid}: plaintext`);
      } else {
        await specChunks(parsed, kenc, n0, plaintext, vector.expected.chunkSha256);
      }
    }
  });
}

// ---------------------------------------------------------------------------
// Test 3: get() reads every vector stored by hand.

async function storeVector(kv: Deno.Kv, vector: Kvc2Vector): Promise<Deno.KvKey> {
  const key = keyOf(vector.inputs.key);
  await kv.set(key, b64(vector.expected.record));
  const built = await buildKvc2(vector.inputs);
  const id = fromHex(vector.inputs.id);
  for (const [i, chunk] of built.chunks.entries()) await kv.set(chunkKey(id, i), chunk);
  return key;
}

for (const vector of file.vectors) {
  kvTest(`kvc2 vector ${vector.name}: get() reads it with each recipient's key`, async (kv) => {
    const key = await storeVector(kv, vector);
    for (const recipient of vector.inputs.recipients) {
      const encryptionKey = recipient.form === "wrapper" ? await testWrapper(recipient) : {
        kty: "oct",
        k: fromHex(recipient.raw).toBase64({ alphabet: "base64url", omitPadding: true }),
        kid: recipient.kid,
      };
      const value = (await get(kv, key, { encryptionKey })).value!;
      assert.deepEqual(value, plaintextOf(vector.inputs.plaintext), recipient.kid);
    }
  });
}

// ---------------------------------------------------------------------------
// Test 4: what no writer makes is refused.

/**
 * Stores the 1-byte inline vector's record with one edit and reads it with
 * the vector's wrapper. Resolves to the error `get()` rejects with.
 */
async function readEdited(edit: (record: Uint8Array) => Uint8Array): Promise<DecryptionError> {
  return await withKv(async (kv) => {
    const vector = file.vectors.find((v) => v.name === "wrapper-1-byte")!;
    const key = await storeVector(kv, vector);
    const wrapper = await testWrapper(
      vector.inputs.recipients[0] as Extract<RecipientJson, { form: "wrapper" }>,
    );
    assert.ok((await get(kv, key, { encryptionKey: wrapper })).value, "the unedited vector reads");
    await kv.set(key, edit(b64(vector.expected.record)));
    return await assertRejects(
      get(kv, key, { encryptionKey: wrapper }),
      DecryptionError,
      undefined,
      "the edited record",
    ) as DecryptionError;
  });
}

/**
 * The edited record is refused by the strict parse (step 1), before any key
 * is tried, and by the check whose message matches `check`.
 */
async function refusedAfter(edit: (record: Uint8Array) => Uint8Array, check: RegExp) {
  const error = await readEdited(edit);
  assert.match(error.message, /the header does not parse/);
  assert.ok(error.cause instanceof RangeError, String(error.cause));
  assert.match(error.cause.message, check);
}

/** Offset of the one stanza's form byte, kid length and wrapped length in a one-recipient KVC2 record. */
const FORM_AT = 78;
const KID_LEN_AT = 79;

Deno.test("kvc2: an unknown stanza form is refused", async () => {
  await refusedAfter((record) => {
    record[FORM_AT] = 3;
    return record;
  }, /unknown stanza form/);
});

kvTest("kvc2: a KVC2 header whose only stanza is a key stanza is refused", async (kv) => {
  const jwk = await generateKey({ kid: "local" });
  await set(kv, ["doc"], new Uint8Array(10), { encryptionKey: jwk });
  const kvc1 = (await kv.get<Uint8Array>(["doc"])).value!;
  // The same header spelled as KVC2: magic changed, a form byte 1 before the one stanza.
  const spelled = new Uint8Array([
    ...utf8.encode("KVC2"),
    ...kvc1.subarray(4, FORM_AT),
    1,
    ...kvc1.subarray(FORM_AT),
  ]);
  await kv.set(["doc"], spelled);
  const error = await assertRejects(get(kv, ["doc"], { encryptionKey: jwk }), DecryptionError);
  // One header, one spelling: refused by the parse, not only by the metadata tag.
  assert.match(error.message, /the header does not parse/);
  assert.match(String((error.cause as Error | undefined)?.message), /without a wrapper/);
});

for (const length of [0, 1_025]) {
  Deno.test(`kvc2: a wrapped length of ${length} is refused`, async () => {
    await refusedAfter((record) => {
      const lengthAt = KID_LEN_AT + 1 + record[KID_LEN_AT]!;
      new DataView(record.buffer).setUint16(lengthAt, length);
      return record;
    }, /bad wrapped length/);
  });
}

Deno.test("kvc2: an empty wrapper kid is refused", async () => {
  await refusedAfter((record) => {
    const kidLen = record[KID_LEN_AT]!;
    // Drop the kid's bytes and say its length is 0.
    const out = new Uint8Array([
      ...record.subarray(0, KID_LEN_AT),
      0,
      ...record.subarray(KID_LEN_AT + 1 + kidLen),
    ]);
    return out;
  }, /empty kid/);
});

/** The 1-byte vector's record with its wrapper stanza holding `length` bytes, laid out in full. */
function withWrappedLength(length: number): (record: Uint8Array) => Uint8Array {
  return (record) => {
    const lengthAt = KID_LEN_AT + 1 + record[KID_LEN_AT]!;
    const old = new DataView(record.buffer).getUint16(lengthAt);
    const field = new Uint8Array(2);
    new DataView(field.buffer).setUint16(0, length);
    return new Uint8Array([
      ...record.subarray(0, lengthAt),
      ...field,
      ...new Uint8Array(length).fill(0x5a),
      ...record.subarray(lengthAt + 2 + old),
    ]);
  };
}

Deno.test("kvc2: wrapped lengths of 1 and 1,024 parse; 0 and 1,025 do not, even with the bytes there", async () => {
  for (const length of [1, 1_024]) {
    // Past the parse: the wrapper cannot unwrap the bytes (step 2).
    const error = await readEdited(withWrappedLength(length));
    assert.doesNotMatch(error.message, /does not parse/, `${length} bytes`);
    assert.match(error.message, /step 2/, `${length} bytes`);
  }
  for (const length of [0, 1_025]) {
    await refusedAfter(withWrappedLength(length), /bad wrapped length/);
  }
});
