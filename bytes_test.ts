/**
 * The hex and base64 helpers that replace `Uint8Array`'s newer methods (which
 * Node 20 lacks): every output equals what Deno's built-in methods give, every
 * decoder inverts its encoder, and malformed text is a SyntaxError. The
 * big-endian writer and reader agree with DataView's BigInt methods.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type Base64Alphabet,
  ByteReader,
  ByteWriter,
  fromBase64,
  fromHex,
  fromUtf8,
  toBase64,
  toHex,
  utf8Length,
} from "./_bytes.ts";

/** Runs per property: enough to hit every length modulo 3, few enough for CI. */
const RUNS = 300;

const bytes = fc.uint8Array({ maxLength: 200 });
const native = { base64: { alphabet: "base64" }, base64url: { alphabet: "base64url" } } as const;

Deno.test("toHex() and fromHex() agree with Uint8Array's toHex and fromHex", () => {
  fc.assert(
    fc.property(bytes, (input) => {
      const text = toHex(input);
      assert.equal(text, input.toHex());
      assert.deepEqual(fromHex(text), input);
      assert.deepEqual(fromHex(text.toUpperCase()), input);
    }),
    { numRuns: RUNS },
  );
});

for (const alphabet of ["base64", "base64url"] as const satisfies Base64Alphabet[]) {
  Deno.test(`toBase64() and fromBase64() agree with Uint8Array's (${alphabet})`, () => {
    fc.assert(
      fc.property(bytes, (input) => {
        const text = toBase64(input, alphabet);
        const expected = input.toBase64({
          ...native[alphabet],
          omitPadding: alphabet !== "base64",
        });
        assert.equal(text, expected);
        assert.deepEqual(fromBase64(text, alphabet), input);
        // Padding is optional when decoding.
        assert.deepEqual(fromBase64(text.replace(/=+$/, ""), alphabet), input);
      }),
      { numRuns: RUNS },
    );
  });
}

Deno.test("fromBase64() ignores the unused low bits of the last digit, as Uint8Array's does", () => {
  // "QR" and "QQ" differ only in bits past the single byte they encode.
  assert.deepEqual(fromBase64("QR", "base64url"), Uint8Array.fromBase64("QR"));
  assert.deepEqual(fromBase64("QR", "base64url"), Uint8Array.of(0x41));
  assert.equal(toBase64(fromBase64("QR", "base64url"), "base64url"), "QQ");
});

Deno.test("malformed hex and base64 are SyntaxErrors that start with Cannot", () => {
  for (const text of ["a", "abc", "zz", "0x00", " 00", "00 "]) {
    assert.throws(() => fromHex(text), { name: "SyntaxError", message: /^Cannot decode hex/ });
  }
  const bad: [string, Base64Alphabet][] = [
    ["Q", "base64"], // one digit holds less than a byte
    ["QQ=", "base64"], // padding that does not fill a group
    ["QQ===", "base64"],
    ["Q=Q=", "base64"],
    ["QQ==", "base64url"], // no padding in base64url
    ["a+b/", "base64url"], // the standard alphabet's digits
    ["a-b_", "base64"], // the URL alphabet's digits
    ["QUJD\n", "base64"],
  ];
  for (const [text, alphabet] of bad) {
    assert.throws(() => fromBase64(text, alphabet), {
      name: "SyntaxError",
      message: new RegExp(`^Cannot decode ${alphabet}`),
    }, JSON.stringify(text));
  }
});

Deno.test("ByteWriter and ByteReader write and read u64 as DataView's BigInt methods do", () => {
  const edges = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 52, Number.MAX_SAFE_INTEGER];
  fc.assert(
    fc.property(
      fc.oneof(fc.constantFrom(...edges), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
      (value) => {
        const written = new ByteWriter().u64(value).finish();
        const expected = new Uint8Array(8);
        new DataView(expected.buffer).setBigUint64(0, BigInt(value));
        assert.deepEqual(written, expected);
        assert.equal(new ByteReader(written).u64("value"), value);
      },
    ),
    { numRuns: RUNS },
  );
  const unsafe = new Uint8Array(8);
  new DataView(unsafe.buffer).setBigUint64(0, BigInt(Number.MAX_SAFE_INTEGER) + 1n);
  assert.throws(() => new ByteReader(unsafe).u64("size"), {
    name: "RangeError",
    message: "Cannot read size: too large",
  });
});

Deno.test("ByteWriter keeps every field in order as its buffer grows", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }), (pieces) => {
      const writer = new ByteWriter();
      for (const piece of pieces) writer.u16(piece.length).bytes(piece).u8(0xaa);
      const reader = new ByteReader(writer.finish());
      for (const piece of pieces) {
        assert.equal(reader.u16("length"), piece.length);
        assert.deepEqual(reader.bytes(piece.length, "piece"), piece);
        assert.equal(reader.u8("marker"), 0xaa);
      }
      assert.equal(reader.remaining, 0);
    }),
    { numRuns: RUNS },
  );
});

Deno.test("fromUtf8() and utf8Length() agree with TextDecoder and TextEncoder", () => {
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 300 }), (text) => {
      const bytes = new TextEncoder().encode(text);
      assert.equal(utf8Length(text), bytes.length);
      assert.equal(fromUtf8(bytes), decoder.decode(bytes));
    }),
    { numRuns: RUNS },
  );
  // Invalid UTF-8 is a TypeError on the ASCII path's fallback as on TextDecoder's.
  for (const bad of [[0x61, 0xff], [0xc3], [0xed, 0xa0, 0x80]]) {
    assert.throws(() => fromUtf8(Uint8Array.from(bad)), TypeError);
  }
  assert.equal(fromUtf8(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61)), "\uFEFFa", "a leading BOM is kept");
});
