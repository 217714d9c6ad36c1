/**
 * Generates `testdata/kvc2_vectors.json`: fixed vectors for encrypted records
 * with KeyWrapper stanzas (magic KVC2), built through the library's format
 * code with injected randomness and the deterministic test wrapper of
 * `_testing/kvc2_vectors.ts`.
 *
 * Run from the repository root:
 *
 * ```sh
 * deno run --allow-write=testdata testdata/make_kvc2_vectors.ts
 * ```
 *
 * Every fixed input is SHA-256("kvc2 vector" / vector name / field) cut to
 * length, so the file is reproducible.
 *
 * @module
 */

import { PATTERN, sha256Hex } from "../_testing/kvc1_vectors.ts";
import {
  buildKvc2,
  type Kvc2File,
  type Kvc2Inputs,
  type Kvc2Vector,
  type RecipientJson,
} from "../_testing/kvc2_vectors.ts";
import { SEALED_CHUNK_SIZE } from "../_limits.ts";

async function fixed(name: string, field: string, length: number): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`kvc2 vector/${name}/${field}`)),
  );
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = digest[i % 32]! ^ Math.floor(i / 32);
  return out.toHex();
}

type RecipientSpec =
  | { form: "key"; kid: string; bits: 128 | 256 }
  | { form: "wrapper"; kid: string; wrappedLength: number };

async function recipient(name: string, spec: RecipientSpec, i: number): Promise<RecipientJson> {
  if (spec.form === "key") {
    return {
      ...spec,
      raw: await fixed(name, `kek ${i}`, spec.bits / 8),
      wrapIv: await fixed(name, `wrap iv ${i}`, 12),
    };
  }
  return {
    ...spec,
    raw: await fixed(name, `wrapper key ${i}`, 32),
    iv: await fixed(name, `wrapper iv ${i}`, 12),
  };
}

const SPECS: { name: string; recipients: RecipientSpec[]; size: number }[] = [
  { name: "wrapper-empty", recipients: [{ form: "wrapper", kid: "kms", wrappedLength: 60 }], size: 0 },
  { name: "wrapper-1-byte", recipients: [{ form: "wrapper", kid: "kms", wrappedLength: 200 }], size: 1 },
  {
    name: "wrapper-one-chunk",
    recipients: [{ form: "wrapper", kid: "kms", wrappedLength: 1_024 }],
    size: SEALED_CHUNK_SIZE,
  },
  {
    name: "wrapper-long-kid-chunks",
    recipients: [{ form: "wrapper", kid: "k".repeat(64), wrappedLength: 200 }],
    size: 3 * SEALED_CHUNK_SIZE + 1_000,
  },
  {
    name: "wrapper-then-aes128",
    recipients: [
      { form: "wrapper", kid: "kms", wrappedLength: 200 },
      { form: "key", kid: "alice", bits: 128 },
    ],
    size: 1_000,
  },
  {
    name: "aes128-then-wrapper",
    recipients: [
      { form: "key", kid: "alice", bits: 128 },
      { form: "wrapper", kid: "kms", wrappedLength: 90 },
    ],
    size: 100_000,
  },
];

const vectors: Kvc2Vector[] = [];
for (const spec of SPECS) {
  const inputs: Kvc2Inputs = {
    recipients: await Promise.all(spec.recipients.map((r, i) => recipient(spec.name, r, i))),
    secret: await fixed(spec.name, "secret", 32),
    id: await fixed(spec.name, "id", 16),
    metaIv: await fixed(spec.name, "meta iv", 12),
    key: ["docs", spec.name],
    meta: { kind: "file", type: "application/pdf", name: `${spec.name}.pdf`, lastModified: 1_700_000_000_000 },
    expiresAt: 0,
    plaintext: { generator: PATTERN, length: spec.size },
  };
  const built = await buildKvc2(inputs);
  vectors.push({
    name: spec.name,
    inputs,
    expected: {
      record: built.record.toBase64(),
      inline: built.inline,
      chunkSha256: await Promise.all(built.chunks.map((chunk) => sha256Hex(new Uint8Array(chunk)))),
    },
  });
}

const file: Kvc2File = {
  format: "KVC2 (FORMAT.md, Encrypted record with key wrappers, KVC2)",
  description:
    "Fixed vectors for encrypted records with KeyWrapper stanzas. Hex for fixed inputs, base64 for the record. " +
    "A wrapper recipient is the test wrapper: AES-256-GCM under `raw` with IV `iv` and AAD = the context " +
    '("kvcrypt/1 wrap" || id || kid), sealing S followed by zero bytes, output iv || ciphertext || tag of ' +
    "exactly wrappedLength bytes; a key recipient wraps S under `raw` with IV `wrapIv`, as in KVC1. " +
    "Plaintext byte i = (i * 31 + 7) % 251. Chunks are given by SHA-256 only.",
  vectors,
};
const out = new URL("./kvc2_vectors.json", import.meta.url);
await Deno.writeTextFile(out, JSON.stringify(file, null, 2) + "\n");
console.log(`wrote ${vectors.length} vectors to ${out.pathname}`);
