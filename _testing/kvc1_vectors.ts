/**
 * Shared by the KVC1 vector generator (`testdata/make_kvc1_vectors.ts`) and
 * `kvc1_vectors_test.ts`: the vector file's types, decoding of its inputs, and
 * building a vector's record and chunks through the library's own format
 * functions with injected randomness. Test 2 of `kvc1_vectors_test.ts` does
 * not use the builder: it decrypts with its own Web Crypto code.
 *
 * @module
 */

import { createSealedFormat, deriveVersionKeys, type RandomSource } from "../_kvc1.ts";
import type { WriteFormat } from "../_record.ts";
import { encodeKey } from "../_user_key.ts";
import { Keyring } from "../keys.ts";
import type { StoredMetadata } from "../_types.ts";

/** The generator of large plaintexts: byte i is (i * 31 + 7) % 251. */
export const PATTERN = "(i * 31 + 7) % 251";

/**
 * One part of a user key in the vector file: a JSON string, number or
 * boolean stands for itself; `{ bytes: hex }` is a Uint8Array,
 * `{ bigint: decimal }` a bigint, `{ number: "-0" }` negative zero.
 */
export type KeyPartJson =
  | string
  | number
  | boolean
  | { bytes: string }
  | { bigint: string }
  | { number: "-0" };

/** A vector's plaintext: explicit bytes, or `length` bytes of {@linkcode PATTERN}. */
export type PlaintextJson = { hex: string } | { generator: typeof PATTERN; length: number };

/** Everything a vector's bytes are computed from. */
export interface VectorInputs {
  /** Recipients in stanza order: raw KEK bytes (hex) and the kid written with them. */
  recipients: { kid: string; bits: 128 | 256; raw: string }[];
  /** The 32-byte secret S (hex). */
  secret: string;
  /** The 16-byte version id (hex). */
  id: string;
  /** One 12-byte wrap IV per recipient, in order (hex). */
  wrapIvs: string[];
  /** The 12-byte metadata nonce (hex). */
  metaIv: string;
  /** The user key the record lives at. */
  key: KeyPartJson[];
  /** The metadata sealed in the header. */
  meta: StoredMetadata;
  /** The header's expiresAt (ms since the epoch, 0 = none). */
  expiresAt: number;
  /** The plaintext. */
  plaintext: PlaintextJson;
  /** SHA-256 of the plaintext (hex). */
  plaintextSha256: string;
}

/** One stored chunk entry `["__kvcrypt__", "chunk", id, index]`. */
export interface ChunkJson {
  /** Chunk index. */
  index: number;
  /** Stored length in bytes. */
  length: number;
  /** SHA-256 of the stored bytes (hex). */
  sha256: string;
  /** The stored bytes (base64); left out for the full chunks of large vectors. */
  base64?: string;
}

/** What the library must produce from the inputs. */
export interface VectorExpected {
  /** encodeKey(key) (hex). */
  encodedKey: string;
  /** HKDF output split: the content key, base nonce and commitment (hex). */
  kenc: string;
  n0: string;
  commitment: string;
  /** The record at the user key (base64): header, then the sealed inline chunk if any. */
  record: string;
  /** Whether chunk 0 is stored inline in the record. */
  inline: boolean;
  /** Chunk entries (none for empty and inline blobs). */
  chunks: ChunkJson[];
}

/** One vector. */
export interface Vector {
  name: string;
  description: string;
  inputs: VectorInputs;
  expected: VectorExpected;
}

/** The vector file. */
export interface VectorFile {
  format: string;
  description: string;
  vectors: Vector[];
}

/** Bytes of a hex string. */
export function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.fromHex(hex);
}

/** SHA-256 (hex). */
export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
}

/** The plaintext bytes a vector describes. */
export function plaintextOf(plaintext: PlaintextJson): Uint8Array<ArrayBuffer> {
  if ("hex" in plaintext) return fromHex(plaintext.hex);
  return patternBytes(plaintext.length);
}

/** `length` bytes of {@linkcode PATTERN}, starting at byte `offset`. */
export function patternBytes(length: number, offset = 0): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((offset + i) * 31 + 7) % 251;
  return out;
}

/** The Deno.KvKey a vector's key description stands for. */
export function keyOf(parts: readonly KeyPartJson[]): Deno.KvKey {
  return parts.map((part): Deno.KvKeyPart => {
    if (typeof part !== "object") return part;
    if ("bytes" in part) return fromHex(part.bytes);
    if ("bigint" in part) return BigInt(part.bigint);
    return -0;
  });
}

/** Imports raw KEK bytes as a non-extractable AES-GCM key. */
export function importRawKek(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

/**
 * A RandomSource that hands out a vector's fixed bytes by purpose, and fails
 * if the library asks for anything else (a second secret, an extra IV, another length).
 */
export function fixedRandom(
  inputs: VectorInputs,
): RandomSource & { assertAllUsed(): void } {
  const wrapIvs = inputs.wrapIvs.map(fromHex);
  let secretUsed = false;
  let metaIvUsed = false;
  let nextWrapIv = 0;
  const take = (bytes: Uint8Array, length: number, purpose: string) => {
    if (bytes.length !== length) {
      throw new Error(
        `fixedRandom: ${purpose} of ${length} bytes asked, fixture has ${bytes.length}`,
      );
    }
    return bytes.slice();
  };
  return {
    bytes(length, purpose) {
      switch (purpose) {
        case "secret":
          if (secretUsed) throw new Error("fixedRandom: a second secret was asked for");
          secretUsed = true;
          return take(fromHex(inputs.secret), length, purpose);
        case "wrap-iv": {
          const iv = wrapIvs[nextWrapIv++];
          if (iv === undefined) throw new Error("fixedRandom: more wrap IVs asked than recipients");
          return take(iv, length, purpose);
        }
        case "meta-iv":
          if (metaIvUsed) throw new Error("fixedRandom: a second meta IV was asked for");
          metaIvUsed = true;
          return take(fromHex(inputs.metaIv), length, purpose);
      }
      throw new Error(`fixedRandom: unknown purpose ${purpose}`);
    },
    assertAllUsed() {
      if (!secretUsed || !metaIvUsed || nextWrapIv !== wrapIvs.length) {
        throw new Error("fixedRandom: not every fixed input was used");
      }
    },
  };
}

/** One keyring per recipient, each holding that recipient's fixed KEK under its kid. */
export async function recipientRings(inputs: VectorInputs): Promise<Keyring[]> {
  return await Promise.all(
    inputs.recipients.map(async (recipient) =>
      new Keyring([{ kid: recipient.kid, key: await importRawKek(fromHex(recipient.raw)) }])
    ),
  );
}

/** What the library builds for a vector. */
export interface BuiltVector {
  encodedKey: Uint8Array;
  n0: Uint8Array;
  commitment: Uint8Array;
  record: Uint8Array;
  inline: boolean;
  chunks: Uint8Array[];
}

/**
 * Cuts a plaintext the way the chunk writer does and seals it with `format`:
 * nothing for an empty blob, one sealed chunk inline in the record up to
 * `inlineMax`, else full chunks of `chunkSize`.
 */
export async function sealBlob(
  format: WriteFormat,
  id: Uint8Array,
  key: Deno.KvKey,
  meta: StoredMetadata,
  expiresAt: number,
  plaintext: Uint8Array,
): Promise<{ record: Uint8Array; inline: boolean; chunks: Uint8Array[] }> {
  const size = plaintext.length;
  const chunkCount = Math.ceil(size / format.chunkSize);
  const layout = { id, chunkSize: format.chunkSize, size, chunks: chunkCount, expiresAt };
  if (size > 0 && size <= format.inlineMax) {
    const inline = await format.sealChunk(0, plaintext);
    return {
      record: await format.encodeRecord(layout, meta, key, inline),
      inline: true,
      chunks: [],
    };
  }
  const chunks: Uint8Array[] = [];
  for (let index = 0; index < chunkCount; index++) {
    const start = index * format.chunkSize;
    chunks.push(await format.sealChunk(index, plaintext.subarray(start, start + format.chunkSize)));
  }
  return { record: await format.encodeRecord(layout, meta, key), inline: false, chunks };
}

/**
 * Builds a vector's record and chunks through the library's format
 * (createSealedFormat → sealChunk / encodeRecord), cutting the plaintext the
 * way the chunk writer does: nothing for an empty blob, one sealed chunk
 * inline in the record up to `inlineMax`, else full chunks of `chunkSize`.
 */
export async function buildVector(inputs: VectorInputs): Promise<BuiltVector> {
  const id = fromHex(inputs.id);
  const key = keyOf(inputs.key);
  const random = fixedRandom(inputs);
  const format = await createSealedFormat(await recipientRings(inputs), id, random);
  const { record, inline, chunks } = await sealBlob(
    format,
    id,
    key,
    inputs.meta,
    inputs.expiresAt,
    plaintextOf(inputs.plaintext),
  );
  random.assertAllUsed();
  const suite = inputs.recipients[0]!.bits === 128 ? 0x01 : 0x02;
  return await builtVector(inputs.secret, id, suite, key, { record, inline, chunks });
}

/** A built vector: the sealed bytes plus the key encoding and HKDF output the file records. */
export async function builtVector(
  secret: string,
  id: Uint8Array,
  suite: number,
  key: Deno.KvKey,
  sealed: { record: Uint8Array; inline: boolean; chunks: Uint8Array[] },
): Promise<BuiltVector> {
  const keys = await deriveVersionKeys(fromHex(secret), id, suite);
  return { encodedKey: encodeKey(key), n0: keys.n0, commitment: keys.commitment, ...sealed };
}
