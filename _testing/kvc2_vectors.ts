/**
 * Shared by the KVC2 vector generator (`testdata/make_kvc2_vectors.ts`) and
 * `kvc2_vectors_test.ts`: the vectors' fixed inputs, the deterministic test
 * KeyWrapper they use, and building a vector through the library's own
 * format code with injected randomness.
 *
 * The test wrapper: AES-256-GCM under a fixed raw key, with a fixed IV per
 * recipient and AAD = the context kvcrypt passes; it seals S followed by
 * zero bytes so that `iv ‖ ciphertext ‖ tag` is exactly `wrappedLength`
 * bytes. Unwrapping opens it and returns the first 32 bytes.
 *
 * @module
 */

import {
  type BuiltVector,
  builtVector,
  fromHex,
  importRawKek,
  keyOf,
  plaintextOf,
  sealBlob,
} from "./kvc1_vectors.ts";
import { createSealedFormat, type RandomSource } from "../_kvc1.ts";
import { Keyring, type KeyringEntry, type KeyWrapper } from "../keys.ts";
import type { KeyPartJson, PlaintextJson } from "./kvc1_vectors.ts";
import type { StoredMetadata } from "../_types.ts";

/** A recipient of a KVC2 vector: a local key, or the deterministic test wrapper. */
export type RecipientJson =
  | { form: "key"; kid: string; bits: 128 | 256; raw: string; wrapIv: string }
  | { form: "wrapper"; kid: string; raw: string; iv: string; wrappedLength: number };

/** Everything a KVC2 vector's bytes are computed from. */
export interface Kvc2Inputs {
  recipients: RecipientJson[];
  secret: string;
  id: string;
  metaIv: string;
  key: KeyPartJson[];
  meta: StoredMetadata;
  expiresAt: number;
  plaintext: PlaintextJson;
}

/** What the library must produce. */
export interface Kvc2Expected {
  /** The record (base64). */
  record: string;
  inline: boolean;
  /** SHA-256 (hex) of every stored chunk, in order. */
  chunkSha256: string[];
}

/** One vector. */
export interface Kvc2Vector {
  name: string;
  inputs: Kvc2Inputs;
  expected: Kvc2Expected;
}

/** The vector file. */
export interface Kvc2File {
  format: string;
  description: string;
  vectors: Kvc2Vector[];
}

/**
 * A KeyWrapper sealing S and zero padding with AES-GCM under `key`, AAD =
 * the context; its outputs are `iv ‖ ciphertext ‖ tag`, exactly
 * `wrappedLength` bytes. `nextIv` gives each wrap's IV.
 */
export function paddedAesWrapper(
  kid: string,
  key: CryptoKey,
  wrappedLength: number,
  nextIv: () => Uint8Array<ArrayBuffer>,
): KeyWrapper {
  // iv (12) ‖ ciphertext of S and padding ‖ tag (16).
  const padded = wrappedLength - 12 - 16;
  return {
    kid,
    async wrap(secret, context) {
      const iv = nextIv();
      const plaintext = new Uint8Array(padded);
      plaintext.set(secret);
      const sealed = await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: context },
        key,
        plaintext,
      );
      return new Uint8Array([...iv, ...new Uint8Array(sealed)]);
    },
    async unwrap(wrapped, context) {
      const opened = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: wrapped.subarray(0, 12), additionalData: context },
        key,
        wrapped.subarray(12),
      );
      return new Uint8Array(opened).subarray(0, 32);
    },
  };
}

/** The deterministic test wrapper of a recipient (see the module doc): a fixed key and IV. */
export async function testWrapper(
  recipient: Extract<RecipientJson, { form: "wrapper" }>,
): Promise<KeyWrapper> {
  const key = await importRawKek(fromHex(recipient.raw));
  return paddedAesWrapper(recipient.kid, key, recipient.wrappedLength, () => fromHex(recipient.iv));
}

/** The keyring entry of each recipient, in order. */
export async function recipientEntries(inputs: Kvc2Inputs): Promise<KeyringEntry[]> {
  return await Promise.all(
    inputs.recipients.map(async (recipient) =>
      recipient.form === "wrapper"
        ? await testWrapper(recipient)
        : { kid: recipient.kid, key: await importRawKek(fromHex(recipient.raw)) }
    ),
  );
}

/** The vector's fixed secret, local-key wrap IVs (in order) and meta IV. */
function fixedRandom(inputs: Kvc2Inputs): RandomSource {
  const wrapIvs = inputs.recipients.flatMap((r) => r.form === "key" ? [fromHex(r.wrapIv)] : []);
  return {
    bytes(_length, purpose) {
      if (purpose === "secret") return fromHex(inputs.secret);
      if (purpose === "meta-iv") return fromHex(inputs.metaIv);
      const iv = wrapIvs.shift();
      if (iv === undefined) throw new Error("more wrap IVs asked than local recipients");
      return iv;
    },
  };
}

/** Builds a vector's record and chunks through the library's format code. */
export async function buildKvc2(inputs: Kvc2Inputs): Promise<BuiltVector> {
  const id = fromHex(inputs.id);
  const key = keyOf(inputs.key);
  const rings = (await recipientEntries(inputs)).map((entry) => new Keyring([entry]));
  const format = await createSealedFormat(rings, id, fixedRandom(inputs));
  const { record, inline, chunks } = await sealBlob(
    format,
    id,
    key,
    inputs.meta,
    inputs.expiresAt,
    plaintextOf(inputs.plaintext),
  );
  const first = inputs.recipients[0]!;
  const suite = first.form === "key" && first.bits === 128 ? 0x01 : 0x02;
  return await builtVector(inputs.secret, id, suite, key, { record, inline, chunks });
}
