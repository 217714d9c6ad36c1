/**
 * Property tests (fast-check): the key encoding round-trips and sizes keys
 * exactly as Deno KV does, the chunker reassembles any chunking of any
 * stream, and blobs round-trip whatever their size and the caller's
 * chunking, plain and encrypted.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { fixedPieces } from "./_source.ts";
import { decodeKey, encodeKey, kvKeySize } from "./_user_key.ts";
import { KV_KEY_MAX } from "./_limits.ts";
import { get, set } from "./blob.ts";
import { generateKey } from "./keys.ts";
import { kvTest } from "./_testing/util.ts";

/** Runs per property: enough to find edge cases, few enough for CI. */
const RUNS = 200;

/** Code units that text decoders, normalizers or Deno KV treat specially. */
const TRICKY_UNITS = [
  "\uFEFF", // byte-order mark: a default TextDecoder strips it when leading
  "\uFFFE",
  "\uFFFF",
  "\0",
  "\uD800", // lone high surrogate: Deno KV stores U+FFFD
  "\uDFFF", // lone low surrogate
  "\u0301", // combining acute accent
  "e\u0301",
  "\u00E9",
  "a",
];

/** Strings built to start, end or be interleaved with the tricky code units. */
const trickyString = fc.array(
  fc.oneof(fc.constantFrom(...TRICKY_UNITS), fc.string({ unit: "binary", maxLength: 4 })),
  { maxLength: 12 },
).map((pieces) => pieces.join(""));

const keyPart: fc.Arbitrary<Deno.KvKeyPart> = fc.oneof(
  fc.string({ unit: "binary" }),
  trickyString,
  fc.string({ unit: "grapheme", minLength: 200, maxLength: 400 }),
  fc.uint8Array({ maxLength: 40 }),
  fc.double({ noNaN: true }),
  fc.constantFrom(-0, 0, Infinity, -Infinity, Number.MAX_VALUE, Number.MIN_VALUE),
  fc.bigInt({ min: -(2n ** 130n), max: 2n ** 130n }),
  fc.boolean(),
);
const userKey = fc.array(keyPart, { minLength: 1, maxLength: 8 });

/** Whether two keys are the same Deno KV key: bytes equal, −0 apart from 0. */
function sameKey(a: Deno.KvKey, b: Deno.KvKey): boolean {
  return a.length === b.length && a.every((part, i) => {
    const other = b[i];
    if (part instanceof Uint8Array) {
      return other instanceof Uint8Array && part.length === other.length &&
        part.every((byte, j) => byte === other[j]);
    }
    return Object.is(part, other);
  });
}

Deno.test("encodeKey() and decodeKey() round-trip every key, −0 and a leading U+FEFF included", () => {
  fc.assert(
    fc.property(userKey, (key) => {
      const back = decodeKey(encodeKey(key));
      assert.equal(back.length, key.length);
      key.forEach((part, i) => {
        // Object.is keeps 0 and −0 apart, as Deno KV does.
        if (part instanceof Uint8Array) assert.deepEqual(back[i], part);
        // A lone surrogate has no UTF-8 form: it comes back as U+FFFD, as Deno KV stores it.
        else if (typeof part === "string") assert.equal(back[i], part.toWellFormed(), `part ${i}`);
        else assert.ok(Object.is(back[i], part), `part ${i}`);
      });
    }),
    { numRuns: RUNS },
  );
});

kvTest(
  "decodeKey(encodeKey(K)) is the key Deno KV stores for K, and encodes back to the same bytes",
  async (kv) => {
    await fc.assert(
      fc.asyncProperty(userKey, async (key) => {
        const fits = kvKeySize(key) <= KV_KEY_MAX;
        fc.pre(fits);
        // What Deno KV itself makes of the key (a lone surrogate becomes U+FFFD).
        await kv.set(key, 1);
        const stored = (await Array.fromAsync(kv.list({ prefix: [] })))[0]!.key;
        await kv.delete(stored);
        const encoded = encodeKey(key);
        const decoded = decodeKey(encoded);
        assert.ok(
          sameKey(decoded, stored),
          `decoded ${Deno.inspect(decoded)} != ${Deno.inspect(stored)}`,
        );
        assert.deepEqual(encodeKey(decoded), encoded);
        assert.deepEqual(encodeKey(stored), encoded);
      }),
      { numRuns: RUNS },
    );
  },
);

kvTest("kvKeySize() agrees with Deno KV on which keys fit", async (kv) => {
  await fc.assert(
    fc.asyncProperty(userKey, fc.integer({ min: -4, max: 4 }), async (key, slack) => {
      // Pads the key with a string part to land right around the limit.
      const padding = KV_KEY_MAX + slack - kvKeySize([...key, ""]);
      const padded = padding >= 0 ? [...key, "x".repeat(padding)] : key;
      const fits = await kv.set(padded, 1).then(() => true, () => false);
      assert.equal(kvKeySize(padded) <= KV_KEY_MAX, fits, `size ${kvKeySize(padded)}`);
    }),
    { numRuns: RUNS },
  );
});

/** A stream delivering `bytes` cut at the given lengths (empty pieces included). */
function streamOf(bytes: Uint8Array, cuts: readonly number[]): ReadableStream<Uint8Array> {
  const pieces: Uint8Array[] = [];
  let offset = 0;
  for (const cut of cuts) {
    const end = Math.min(bytes.length, offset + cut);
    pieces.push(bytes.slice(offset, end));
    offset = end;
  }
  pieces.push(bytes.slice(offset));
  return ReadableStream.from(pieces);
}

Deno.test("fixedPieces() cuts any chunking into full pieces and one shorter last", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 3000 }),
      fc.array(fc.integer({ min: 0, max: 700 }), { maxLength: 20 }),
      fc.integer({ min: 1, max: 512 }),
      async (bytes, cuts, size) => {
        const pieces = await Array.fromAsync(
          fixedPieces(streamOf(bytes, cuts), size, undefined, "[k]"),
        );
        pieces.slice(0, -1).forEach((piece) => assert.equal(piece.length, size));
        assert.ok(pieces.every((piece) => piece.length > 0));
        const joined = new Uint8Array(bytes.length);
        let offset = 0;
        for (const piece of pieces) {
          joined.set(piece, offset);
          offset += piece.length;
        }
        assert.equal(offset, bytes.length);
        assert.deepEqual(joined, bytes);
      },
    ),
    { numRuns: RUNS },
  );
});

kvTest("set() and get() round-trip any size and chunking, plain and encrypted", async (kv) => {
  const encryptionKey = await generateKey();
  const MAX = 3 * 65_536 + 100;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: MAX }),
      fc.array(fc.integer({ min: 0, max: 100_000 }), { maxLength: 6 }),
      fc.boolean(),
      async (size, cuts, encrypted) => {
        const bytes = new Uint8Array(size);
        for (let i = 0; i < size; i++) bytes[i] = (i * 31 + size) & 0xff;
        const options = encrypted ? { encryptionKey } : {};
        await set(kv, ["p"], streamOf(bytes, cuts), options);
        assert.deepEqual((await get(kv, ["p"], options)).value, bytes);
      },
    ),
    { numRuns: 40 },
  );
});
