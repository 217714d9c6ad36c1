/**
 * Generates `testdata/kvc1_vectors.json`: fixed KVC1 vectors built through the
 * library's format functions with injected randomness (fixed S, id, wrap IVs
 * and metaIv; fixed raw KEKs imported as AES-GCM CryptoKeys with kids).
 *
 * Run from the repository root:
 *
 * ```sh
 * deno run --allow-write=testdata testdata/make_kvc1_vectors.ts
 * ```
 *
 * Every fixed input is SHA-256("kvc1 vector" / vector name / field) cut to
 * length, so the file is reproducible and no two inputs share bytes. The
 * record and chunk bytes in the file are what the library produced the day it
 * was generated; `kvc1_vectors_test.ts` rebuilds them with the library and
 * decrypts them with its own Web Crypto code written from FORMAT.md.
 *
 * @module
 */

import {
  buildVector,
  type ChunkJson,
  type KeyPartJson,
  PATTERN,
  plaintextOf,
  sha256Hex,
  type Vector,
  type VectorFile,
  type VectorInputs,
} from "../_testing/kvc1_vectors.ts";
import { SEALED_CHUNK_SIZE } from "../_limits.ts";
import type { StoredMetadata } from "../_types.ts";

/** Largest plaintext written out in full as hex; longer ones use the generator. */
const HEX_PLAINTEXT_MAX = 64;
/** Vectors of at most this many stored chunk bytes keep every chunk's bytes in the file. */
const FULL_CHUNKS_MAX_BYTES = 70_000;

const encoder = new TextEncoder();

/** Fixed bytes for one field of one vector: SHA-256 of a label, cut to `length` (≤ 32). */
async function fixed(vector: string, field: string, length: number): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", encoder.encode(`kvc1 vector/${vector}/${field}`)),
  );
  return digest.subarray(0, length).toHex();
}

/** HKDF-SHA-256 as FORMAT.md states it, only to record Kenc in the file. */
async function kencHex(inputs: VectorInputs): Promise<string> {
  const suite = inputs.recipients[0]!.bits === 128 ? 0x01 : 0x02;
  const keyBytes = suite === 0x01 ? 16 : 32;
  const ikm = await crypto.subtle.importKey(
    "raw",
    Uint8Array.fromHex(inputs.secret),
    "HKDF",
    false,
    ["deriveBits"],
  );
  const info = new Uint8Array([...encoder.encode("kvcrypt/1 blob"), suite]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: Uint8Array.fromHex(inputs.id), info },
    ikm,
    (keyBytes + 12 + 32) * 8,
  );
  return new Uint8Array(bits).subarray(0, keyBytes).toHex();
}

interface Spec {
  name: string;
  description: string;
  recipients: { kid: string; bits: 128 | 256 }[];
  key: KeyPartJson[];
  meta: StoredMetadata;
  expiresAt?: number;
  size: number;
}

const REPORT_KEY: KeyPartJson[] = ["files", "report.pdf", 7, { bytes: "00ff10" }];
const REPORT_META: StoredMetadata = {
  kind: "file",
  type: "application/pdf",
  name: "report.pdf",
  lastModified: 1_767_225_600_000,
};

const specs: Spec[] = [];
for (const bits of [128, 256] as const) {
  const kek = [{ kid: `kek-${bits}`, bits }];
  const sizes: [string, number, string][] = [
    ["empty", 0, "an empty blob: header only, no chunk"],
    ["one-byte", 1, "one byte, sealed inline in the record"],
    [
      "one-chunk",
      SEALED_CHUNK_SIZE,
      "one full chunk (65,520 bytes): above SEALED_INLINE_MAX, so stored as chunk entry 0",
    ],
    [
      "three-chunks-tail",
      3 * SEALED_CHUNK_SIZE + 1_000,
      "three full chunks and a 1,000-byte tail: four chunk entries",
    ],
  ];
  for (const [label, size, description] of sizes) {
    specs.push({
      name: `aes${bits}-${label}`,
      description: `AES-${bits}-GCM, ${description}`,
      recipients: kek,
      key: REPORT_KEY,
      meta: REPORT_META,
      size,
    });
  }
}
specs.push({
  name: "two-recipients",
  description:
    "two recipients (AES-256 'alice' first, so suite 0x02; AES-128 'bob'), 5,000 bytes inline; " +
    "the key has a bigint, a boolean, negative zero and an empty Uint8Array",
  recipients: [{ kid: "alice", bits: 256 }, { kid: "bob", bits: 128 }],
  key: ["shared", { bigint: "-1234567890123456789" }, true, { number: "-0" }, { bytes: "" }, 2.5],
  meta: { kind: "file", type: "text/csv", name: "q3 ☃.csv", lastModified: 1_700_000_000_123 },
  size: 5_000,
});
specs.push({
  name: "aes256-bare-key-expiring",
  description:
    "a bare CryptoKey (empty kid), a Blob of 100 bytes inline, expiresAt 2100-01-01T00:00:00Z",
  recipients: [{ kid: "", bits: 256 }],
  key: [{ bytes: "6b7663" }, "blob", 0],
  meta: { kind: "blob", type: "text/plain" },
  expiresAt: 4_102_444_800_000,
  size: 100,
});

const vectors: Vector[] = [];
for (const spec of specs) {
  const recipients = await Promise.all(spec.recipients.map(async (recipient, index) => ({
    kid: recipient.kid,
    bits: recipient.bits,
    raw: await fixed(spec.name, `kek ${index}`, recipient.bits / 8),
  })));
  const plaintext = spec.size <= HEX_PLAINTEXT_MAX
    ? { hex: (await fixed(spec.name, "plaintext", 32)).slice(0, spec.size * 2) }
    : { generator: PATTERN, length: spec.size } as const;
  const inputs: VectorInputs = {
    recipients,
    secret: await fixed(spec.name, "secret", 32),
    id: await fixed(spec.name, "id", 16),
    wrapIvs: await Promise.all(spec.recipients.map((_, i) => fixed(spec.name, `wrap iv ${i}`, 12))),
    metaIv: await fixed(spec.name, "meta iv", 12),
    key: spec.key,
    meta: spec.meta,
    expiresAt: spec.expiresAt ?? 0,
    plaintext,
    plaintextSha256: await sha256Hex(plaintextOf(plaintext)),
  };
  const built = await buildVector(inputs);
  const storedBytes = built.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const chunks: ChunkJson[] = await Promise.all(built.chunks.map(async (chunk, index) => {
    const entry: ChunkJson = {
      index,
      length: chunk.length,
      sha256: await sha256Hex(new Uint8Array(chunk)),
    };
    // Large vectors keep only the last (tail) chunk's bytes: the file stays small.
    if (storedBytes <= FULL_CHUNKS_MAX_BYTES || index === built.chunks.length - 1) {
      entry.base64 = chunk.toBase64();
    }
    return entry;
  }));
  vectors.push({
    name: spec.name,
    description: spec.description,
    inputs,
    expected: {
      encodedKey: built.encodedKey.toHex(),
      kenc: await kencHex(inputs),
      n0: built.n0.toHex(),
      commitment: built.commitment.toHex(),
      record: built.record.toBase64(),
      inline: built.inline,
      chunks,
    },
  });
}

const file: VectorFile = {
  format: "KVC1 (FORMAT.md, Encrypted record, KVC1)",
  description: "Fixed vectors for kvcrypt's encrypted blob format. Hex for fixed inputs, base64 " +
    "for stored bytes. A record is stored at the user key (inputs.key: a JSON string, number " +
    'or boolean is itself; {"bytes": hex} a Uint8Array; {"bigint": decimal} a bigint; ' +
    '{"number": "-0"} negative zero); chunk i at ["__kvcrypt__", "chunk", id, i]. Plaintexts ' +
    `longer than ${HEX_PLAINTEXT_MAX} bytes are generated: byte i = ${PATTERN}. Recipients ` +
    "are raw AES-GCM KEKs with the kid written in their stanza. expected.kenc/n0/commitment " +
    "split HKDF-SHA-256(S, salt = id, info = 'kvcrypt/1 blob' || suite). Generated by " +
    "testdata/make_kvc1_vectors.ts.",
  vectors,
};

const out = new URL("./kvc1_vectors.json", import.meta.url);
await Deno.writeTextFile(out, JSON.stringify(file, null, 2) + "\n");
console.log(`wrote ${vectors.length} vectors to ${out.pathname}`);
