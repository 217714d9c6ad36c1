/**
 * The KVC1 encryption format (FORMAT.md, "Encrypted record, KVC1"): header, key derivation,
 * wrapped secrets, sealed metadata, chunk nonces. Everything here is byte
 * exact; the public surface is in crypto.ts.
 *
 * A header with at least one KeyWrapper stanza is written as KVC2: the same
 * layout, but every stanza starts with a form byte (1: a local key's
 * `kidLen kid iv wrapped(48)`, 2: a wrapper's `kidLen kid len(u16)
 * wrapped(1–1,024)`). Headers whose recipients are all local keys stay KVC1
 * byte for byte.
 *
 * @module
 */

import {
  ByteReader,
  ByteWriter,
  concat,
  constantTimeEqual,
  fromUtf8,
  owned,
  utf8,
} from "./_bytes.ts";
import {
  gcmOpen,
  gcmSeal,
  hkdfSha256,
  importAesGcmKey,
  SUITE_AES_256_GCM,
  SUITE_KEY_BYTES,
  suiteOf,
} from "./_aes_gcm.ts";
import { DecryptionError } from "./_errors.ts";
import {
  isKeyWrapper,
  type KeyEntry,
  type Keyring,
  type KeyringEntry,
  type KeyWrapper,
  kidProblem,
} from "./_keyring.ts";
import {
  COMMITMENT_BYTES,
  GCM_IV_BYTES,
  GCM_TAG_BYTES,
  ID_BYTES,
  KID_MAX,
  META_JSON_MAX,
  SEALED_CHUNK_SIZE,
  SEALED_INLINE_MAX,
  SECRET_BYTES,
  STANZAS_MAX,
  WRAPPED_INLINE_MAX,
  WRAPPED_SECRET_BYTES,
  WRAPPER_OUTPUT_MAX,
} from "./_limits.ts";
import {
  chunkLength,
  decodeMeta,
  encodeMeta,
  type OpenedRecord,
  type Prefetch,
  readLayout,
  type RecordLayout,
  SEALED_MAGIC,
  wholeBatch,
  WRAPPED_MAGIC,
  type WriteFormat,
  writeLayout,
} from "./_record.ts";
import { encodeKey } from "./_user_key.ts";
import { VersionCache } from "./_version_cache.ts";
import { ParsedRecords } from "./_parsed_records.ts";
import type { StoredMetadata } from "./_types.ts";

// The header's suite bytes, for the tests and benchmarks that build headers.
export { SUITE_AES_128_GCM, SUITE_AES_256_GCM } from "./_aes_gcm.ts";

/** Largest sealed metadata: the JSON plus its tag. */
export const SEALED_META_MAX = META_JSON_MAX + GCM_TAG_BYTES;
/** Largest plaintext size a KVC1 header can describe: a u32 chunk count of full chunks. */
export const SEALED_SIZE_MAX = (2 ** 32 - 1) * SEALED_CHUNK_SIZE;

const BLOB_INFO = utf8("kvcrypt/1 blob");
const WRAP_AAD = utf8("kvcrypt/1 wrap");

/** One recipient's copy of S, wrapped by a local AES-GCM key. */
export interface KeyStanza {
  /** Wrapped by a local key. */
  form: "key";
  /** Key id of the key that wraps S ("" for a bare CryptoKey). */
  kid: string;
  /** Nonce of the wrap. */
  iv: Uint8Array;
  /** S sealed under the recipient's key (48 bytes). */
  wrapped: Uint8Array;
}

/** One recipient's copy of S, wrapped by a KeyWrapper (a key held elsewhere). */
export interface WrapperStanza {
  /** Wrapped by a KeyWrapper. */
  form: "wrapper";
  /** The wrapper's kid (1–64 bytes). */
  kid: string;
  /** What the wrapper returned (1–1,024 bytes). */
  wrapped: Uint8Array;
}

/** One recipient's wrapped copy of S. */
export type Stanza = KeyStanza | WrapperStanza;

/** Stanza form bytes of a KVC2 header. */
const FORM_KEY = 0x01;
const FORM_WRAPPER = 0x02;

/** A parsed KVC1 header: every field, plus the raw bytes the metadata tag covers. */
export interface SealedHeader extends RecordLayout {
  /** Suite byte. */
  suite: number;
  /** Key commitment. */
  commitment: Uint8Array;
  /** Recipients. */
  stanzas: Stanza[];
  /** Nonce of the sealed metadata. */
  metaIv: Uint8Array;
  /** Sealed metadata. */
  sealedMeta: Uint8Array;
  /** Header bytes from the magic through `metaLen`: the metadata's AAD prefix. */
  authenticated: Uint8Array;
  /** Sealed chunk 0 when stored inline. */
  inline: Uint8Array | undefined;
}

/** Source of the format's randomness; tests inject fixed bytes to rebuild vectors. */
export interface RandomSource {
  /** `length` fresh random bytes for `purpose`. */
  bytes(length: number, purpose: "secret" | "wrap-iv" | "meta-iv"): Uint8Array;
}

/** Web Crypto's randomness. */
export const systemRandom: RandomSource = {
  bytes: (length) => crypto.getRandomValues(new Uint8Array(length)),
};

/** The keys derived from S for one blob version. */
export interface VersionKeys {
  /** Suite byte. */
  suite: number;
  /** The content key. */
  kenc: CryptoKey;
  /** Base nonce of chunk 0. */
  n0: Uint8Array;
  /** Key commitment. */
  commitment: Uint8Array;
}

/** HKDF-SHA-256(S, salt = id, info = "kvcrypt/1 blob" || suite) → Kenc || N0 || commitment. */
export async function deriveVersionKeys(
  secret: Uint8Array,
  id: Uint8Array,
  suite: number,
): Promise<VersionKeys> {
  const keyBytes = SUITE_KEY_BYTES[suite];
  if (keyBytes === undefined) throw new TypeError("unknown suite");
  const bits = hkdfSha256(
    secret,
    id,
    concat([BLOB_INFO, Uint8Array.of(suite)]),
    keyBytes + GCM_IV_BYTES + COMMITMENT_BYTES,
  );
  const kenc = await importAesGcmKey(bits.subarray(0, keyBytes), ["encrypt", "decrypt"]);
  return {
    suite,
    kenc,
    n0: bits.slice(keyBytes, keyBytes + GCM_IV_BYTES),
    commitment: bits.slice(keyBytes + GCM_IV_BYTES),
  };
}

/** Nonce of chunk `index`: N0 XOR be96(index). */
export function chunkNonce(n0: Uint8Array, index: number): Uint8Array {
  const nonce = n0.slice();
  const view = new DataView(nonce.buffer);
  // index < 2^32, so only the last four bytes of be96(index) are non-zero.
  view.setUint32(GCM_IV_BYTES - 4, view.getUint32(GCM_IV_BYTES - 4) ^ index);
  return nonce;
}

/** Seals chunk `index` under the version keys. */
export function sealChunk(
  keys: VersionKeys,
  index: number,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  return gcmSeal(keys.kenc, chunkNonce(keys.n0, index), plaintext);
}

/**
 * What a KeyWrapper must bind to a wrapped secret: the KVC1 stanza AAD
 * (`"kvcrypt/1 wrap"` ‖ id) ‖ the kid, so a wrapped secret opens neither
 * another blob nor under another kid.
 */
export function wrapperContext(id: Uint8Array, kid: string): Uint8Array<ArrayBuffer> {
  return owned(concat([WRAP_AAD, id, utf8(kid)]));
}

/** Wraps S for one recipient: a local key seals it, a KeyWrapper is asked to. */
export async function wrapSecret(
  entry: KeyringEntry,
  secret: Uint8Array,
  id: Uint8Array,
  random: RandomSource,
): Promise<Stanza> {
  if (isKeyWrapper(entry)) return await wrapWithWrapper(entry, secret, id);
  const iv = random.bytes(GCM_IV_BYTES, "wrap-iv");
  const wrapped = await gcmSeal(entry.key, iv, secret, concat([WRAP_AAD, id]));
  return { form: "key", kid: entry.kid, iv, wrapped };
}

/**
 * Asks a KeyWrapper to wrap S. Its rejection is passed on as it is (the
 * write then stores nothing).
 *
 * @throws {RangeError} if it returns anything but 1 to 1,024 bytes.
 */
async function wrapWithWrapper(
  wrapper: KeyWrapper,
  secret: Uint8Array,
  id: Uint8Array,
): Promise<WrapperStanza> {
  // Read once and checked again: the object may have changed since it joined a keyring.
  const kid: unknown = wrapper.kid;
  // A lone surrogate would be stored as U+FFFD: the stanza would never match its wrapper again.
  if (typeof kid !== "string" || kid === "" || kidProblem(kid) !== undefined) {
    throw new RangeError(
      `Cannot encrypt for a key wrapper: its kid must be 1 to ${KID_MAX} bytes of well-formed UTF-8`,
    );
  }
  // A copy each: the wrapper must not be able to change the secret the chunks are sealed under.
  const wrapped: unknown = await wrapper.wrap(secret.slice(), wrapperContext(id, kid));
  if (
    !(wrapped instanceof Uint8Array) || wrapped.length < 1 || wrapped.length > WRAPPER_OUTPUT_MAX
  ) {
    const got = wrapped instanceof Uint8Array ? `${wrapped.length} bytes` : typeof wrapped;
    throw new RangeError(
      `Cannot encrypt for key wrapper ${
        JSON.stringify(kid)
      }: it returned ${got}, expected a Uint8Array of 1 to ${WRAPPER_OUTPUT_MAX} bytes`,
    );
  }
  // A copy (a Buffer's slice() is a view): the wrapper may reuse what it returned.
  return { form: "wrapper", kid, wrapped: new Uint8Array(wrapped) };
}

/** Whether a header needs the KVC2 form: one of its stanzas is a wrapper's. */
function hasWrapperStanza(stanzas: readonly Stanza[]): boolean {
  return stanzas.some((stanza) => stanza.form === "wrapper");
}

function writeStanza(writer: ByteWriter, stanza: Stanza, typed: boolean): void {
  const kid = utf8(stanza.kid);
  if (stanza.form === "wrapper") {
    writer.u8(FORM_WRAPPER).u8(kid.length).bytes(kid).u16(stanza.wrapped.length)
      .bytes(stanza.wrapped);
    return;
  }
  if (typed) writer.u8(FORM_KEY);
  writer.u8(kid.length).bytes(kid).bytes(stanza.iv).bytes(stanza.wrapped);
}

function writeHeaderPrefix(
  header: Omit<SealedHeader, "sealedMeta" | "authenticated" | "inline">,
  sealedMetaLength: number,
): Uint8Array {
  const typed = hasWrapperStanza(header.stanzas);
  const magic = typed ? WRAPPED_MAGIC : SEALED_MAGIC;
  const writer = writeLayout(
    new ByteWriter().bytes(magic).u8(header.suite).bytes(header.id).bytes(header.commitment),
    header,
  ).u8(header.stanzas.length);
  for (const stanza of header.stanzas) writeStanza(writer, stanza, typed);
  return writer.bytes(header.metaIv).u32(sealedMetaLength).finish();
}

/**
 * Writes a header: the fields, a fresh `metaIv`, and the metadata sealed
 * with AAD = header bytes through `metaLen` || encodeKey(key).
 */
export async function encodeHeader(
  fields: Omit<SealedHeader, "metaIv" | "sealedMeta" | "authenticated" | "inline">,
  keys: VersionKeys,
  meta: StoredMetadata,
  key: Deno.KvKey,
  random: RandomSource,
): Promise<Uint8Array> {
  return (await sealHeader(fields, keys, meta, key, random)).bytes;
}

/** {@linkcode encodeHeader}, also returning the authenticated bytes (magic through `metaLen`). */
async function sealHeader(
  fields: Omit<SealedHeader, "metaIv" | "sealedMeta" | "authenticated" | "inline">,
  keys: VersionKeys,
  meta: StoredMetadata,
  key: Deno.KvKey,
  random: RandomSource,
): Promise<{ bytes: Uint8Array; authenticated: Uint8Array }> {
  // A fresh metaIv on every header write: a rewrap changes the AAD, and
  // reusing a GCM nonce under Kenc with another AAD would leak the GHASH key.
  const metaIv = random.bytes(GCM_IV_BYTES, "meta-iv");
  const metaJson = encodeMeta(meta);
  const prefix = writeHeaderPrefix({ ...fields, metaIv }, metaJson.length + GCM_TAG_BYTES);
  const sealedMeta = await gcmSeal(keys.kenc, metaIv, metaJson, concat([prefix, encodeKey(key)]));
  return { bytes: concat([prefix, sealedMeta]), authenticated: prefix };
}

function fail(what: string, step: string, cause: unknown): never {
  throw new DecryptionError(`Cannot decrypt ${what}: ${step}`, { cause });
}

function readKid(reader: ByteReader): string {
  const kidLen = reader.u8("kid length");
  if (kidLen > KID_MAX) throw new RangeError("kid too long");
  return fromUtf8(reader.bytes(kidLen, "kid"));
}

function readKeyStanza(reader: ByteReader): KeyStanza {
  const kid = readKid(reader);
  const iv = reader.bytes(GCM_IV_BYTES, "stanza iv");
  const wrapped = reader.bytes(WRAPPED_SECRET_BYTES, "wrapped secret");
  return { form: "key", kid, iv, wrapped };
}

function readWrapperStanza(reader: ByteReader): WrapperStanza {
  const kid = readKid(reader);
  if (kid === "") throw new RangeError("a wrapper stanza has an empty kid");
  const length = reader.u16("wrapped length");
  if (length < 1 || length > WRAPPER_OUTPUT_MAX) throw new RangeError("bad wrapped length");
  return { form: "wrapper", kid, wrapped: reader.bytes(length, "wrapped secret") };
}

/** Reads `count` stanzas: KVC1's untyped ones, or KVC2's with a form byte each. */
function readStanzas(reader: ByteReader, count: number, typed: boolean): Stanza[] {
  const stanzas: Stanza[] = [];
  for (let i = 0; i < count; i++) {
    const form = typed ? reader.u8("stanza form") : FORM_KEY;
    if (form === FORM_KEY) stanzas.push(readKeyStanza(reader));
    else if (form === FORM_WRAPPER) stanzas.push(readWrapperStanza(reader));
    else throw new RangeError("unknown stanza form");
  }
  // One header, one spelling: KVC2 is written only when a wrapper stanza needs it.
  if (typed && !hasWrapperStanza(stanzas)) throw new RangeError("a KVC2 header without a wrapper");
  return stanzas;
}

/**
 * Step 1 of the decrypt order (FORMAT.md, "Decrypting a blob"): parses a KVC1 record strictly.
 * Its byte fields are views of `bytes`, which must not change afterwards.
 *
 * @throws {DecryptionError} when any field is out of place or out of bounds.
 */
export function parseHeader(bytes: Uint8Array, what = "the blob"): SealedHeader {
  try {
    const reader = new ByteReader(bytes);
    const magic = reader.bytes(SEALED_MAGIC.length, "magic");
    const typed = constantTimeEqual(magic, WRAPPED_MAGIC);
    if (!typed && !constantTimeEqual(magic, SEALED_MAGIC)) {
      throw new TypeError("not a KVC1 or KVC2 record");
    }
    const suite = reader.u8("suite");
    if (SUITE_KEY_BYTES[suite] === undefined) throw new RangeError("unknown suite");
    const id = reader.bytes(ID_BYTES, "id");
    const commitment = reader.bytes(COMMITMENT_BYTES, "commitment");
    const layout = readLayout(reader, id, SEALED_CHUNK_SIZE, SEALED_SIZE_MAX);
    const count = reader.u8("stanza count");
    if (count < 1 || count > STANZAS_MAX) throw new RangeError("bad stanza count");
    const stanzas = readStanzas(reader, count, typed);
    const metaIv = reader.bytes(GCM_IV_BYTES, "meta iv");
    const metaLen = reader.u32("meta length");
    if (metaLen < GCM_TAG_BYTES || metaLen > SEALED_META_MAX) {
      throw new RangeError("bad meta length");
    }
    const authenticated = bytes.subarray(0, reader.offset);
    const sealedMeta = reader.bytes(metaLen, "meta");
    const rest = reader.rest();
    const inline = rest.length > 0 ? rest : undefined;
    // Nothing may follow the header but exactly one sealed chunk 0.
    if (inline && (layout.chunks !== 1 || inline.length !== layout.size + GCM_TAG_BYTES)) {
      throw new RangeError("trailing bytes after the header");
    }
    return {
      suite,
      ...layout,
      commitment,
      stanzas,
      metaIv,
      sealedMeta,
      authenticated,
      inline,
    };
  } catch (cause) {
    if (cause instanceof DecryptionError) throw cause;
    fail(what, "the header does not parse (step 1)", cause);
  }
}

/**
 * Headers parsed recently or written by this process (an entry holds one
 * header of at most WRAPPED_HEADER_MAX bytes; inline records are not kept).
 * A KVC1 or KVC2 record holds its version id after the magic and the suite
 * byte. Exported for its tests.
 */
export const parsedHeaders: ParsedRecords<SealedHeader> = new ParsedRecords(
  SEALED_MAGIC.length + 1,
);

/**
 * Step 1 for a record read from the store: the header parsed before from
 * exactly these bytes (or written as them), else {@linkcode parseHeader} of a
 * private copy of them.
 *
 * @throws {DecryptionError} as {@linkcode parseHeader}.
 */
export function parseRecordHeader(bytes: Uint8Array, what: string): SealedHeader {
  const known = parsedHeaders.find(bytes);
  if (known !== undefined) return known;
  const copy = bytes.slice();
  const header = parseHeader(copy, what);
  if (header.inline === undefined) parsedHeaders.add(copy, header);
  return header;
}

/** Whether a local reader key may open a stanza: equal kids, or either kid empty. */
function keyMatchesStanza(entry: KeyEntry, stanza: KeyStanza): boolean {
  return entry.kid === "" || stanza.kid === "" || entry.kid === stanza.kid;
}

/**
 * S unwrapped, with the stanza that gave it and, when a local key opened it,
 * that key (what the version cache keeps).
 */
interface Unwrapped {
  secret: Uint8Array;
  kek: CryptoKey | undefined;
  stanza: number;
}

/** S opened by a local key from a local key's stanza, or undefined. */
async function openKeyStanzas(
  header: SealedHeader,
  keys: readonly KeyEntry[],
  errors: unknown[],
): Promise<Unwrapped | undefined> {
  const aad = concat([WRAP_AAD, header.id]);
  for (const [index, stanza] of header.stanzas.entries()) {
    if (stanza.form !== "key") continue;
    for (const entry of keys) {
      if (!keyMatchesStanza(entry, stanza)) continue;
      try {
        const secret = await gcmOpen(entry.key, stanza.iv, stanza.wrapped, aad);
        if (secret.length === SECRET_BYTES) return { secret, kek: entry.key, stanza: index };
      } catch (error) {
        errors.push(error);
      }
    }
  }
  return undefined;
}

/** S returned by a KeyWrapper for a stanza with its own kid, or undefined. */
async function openWrapperStanzas(
  header: SealedHeader,
  wrappers: readonly KeyWrapper[],
  errors: unknown[],
): Promise<Unwrapped | undefined> {
  for (const [index, stanza] of header.stanzas.entries()) {
    if (stanza.form !== "wrapper") continue;
    for (const wrapper of wrappers) {
      // A wrapper is asked only about its own stanzas: each call may be a network request.
      if (wrapper.kid !== stanza.kid) continue;
      try {
        const context = wrapperContext(header.id, stanza.kid);
        const secret: unknown = await wrapper.unwrap(stanza.wrapped.slice(), context);
        if (secret instanceof Uint8Array && secret.length === SECRET_BYTES) {
          return { secret: new Uint8Array(secret), kek: undefined, stanza: index };
        }
        errors.push(
          new RangeError(`key wrapper ${JSON.stringify(stanza.kid)} returned no 32-byte secret`),
        );
      } catch (error) {
        errors.push(error);
      }
    }
  }
  return undefined;
}

/** The local keys among a reader's keys. */
function localKeys(readKeys: readonly KeyringEntry[]): KeyEntry[] {
  return readKeys.filter((entry): entry is KeyEntry => !isKeyWrapper(entry));
}

/**
 * Step 2: unwraps S with the first reader key that opens a matching stanza,
 * local keys first (no network), then wrappers for their own kids. The
 * error's cause is the last failure (a wrapper's own error).
 */
async function unwrap(
  header: SealedHeader,
  readKeys: readonly KeyringEntry[],
  what: string,
): Promise<Unwrapped> {
  const errors: unknown[] = [];
  const unwrapped = await openKeyStanzas(header, localKeys(readKeys), errors) ??
    await openWrapperStanzas(header, readKeys.filter(isKeyWrapper), errors);
  if (unwrapped !== undefined) return unwrapped;
  fail(what, "no key given opens any recipient stanza (step 2)", errors.at(-1));
}

/** Step 3: derives the version keys from S and checks the commitment. */
async function deriveCommitted(
  header: SealedHeader,
  secret: Uint8Array,
  what: string,
): Promise<VersionKeys> {
  const keys = await deriveVersionKeys(secret, header.id, header.suite);
  // Key commitment: one header cannot open to two plaintexts under two recipients' keys.
  if (!constantTimeEqual(keys.commitment, header.commitment)) {
    fail(what, "the key commitment does not match (step 3)", undefined);
  }
  return keys;
}

/** Step 4: opens the metadata, whose tag binds every header byte and the user key. */
async function openMeta(
  header: SealedHeader,
  keys: VersionKeys,
  key: Deno.KvKey,
  what: string,
): Promise<StoredMetadata> {
  let metaJson: Uint8Array;
  try {
    // The AAD binds every header field and the user key: an edited header or a
    // record copied to another key fails here.
    metaJson = await gcmOpen(
      keys.kenc,
      header.metaIv,
      header.sealedMeta,
      concat([header.authenticated, encodeKey(key)]),
    );
  } catch (cause) {
    fail(what, "the header or its key was changed (step 4)", cause);
  }
  try {
    return decodeMeta(metaJson);
  } catch (cause) {
    fail(what, "the metadata does not parse (step 4)", cause);
  }
}

/** Versions opened recently: repeated reads skip steps 2 and 3, never step 4. */
const openedVersions = new VersionCache<VersionKeys>();

/**
 * Steps 2–4 through the cache: an entry found for exactly these header bytes
 * and one of the reader's own keys gives S and the version keys; the
 * metadata is opened either way, and a version is cached only once it did.
 * `whileChecking` is handed the version keys as step 4 starts.
 */
async function openVersion(
  header: SealedHeader,
  key: Deno.KvKey,
  readKeys: readonly KeyringEntry[],
  what: string,
  whileChecking?: (keys: VersionKeys) => void,
): Promise<{ secret: Uint8Array; keys: VersionKeys; meta: StoredMetadata }> {
  const mayOpen = (entry: KeyEntry, index: number) => {
    const stanza = header.stanzas[index]!;
    return stanza.form === "key" && keyMatchesStanza(entry, stanza);
  };
  const cached = openedVersions.find(
    header.id,
    header.authenticated,
    localKeys(readKeys),
    mayOpen,
  );
  if (cached !== undefined) {
    const { secret, keys } = cached;
    whileChecking?.(keys);
    return { secret, keys, meta: await openMeta(header, keys, key, what) };
  }
  const { secret, kek, stanza } = await unwrap(header, readKeys, what);
  const keys = await deriveCommitted(header, secret, what);
  whileChecking?.(keys);
  const meta = await openMeta(header, keys, key, what);
  // Only secrets a local key opened are kept: a key service is asked on every
  // read, so it can still refuse (and log) each one.
  if (kek !== undefined) {
    // Copies: the header's fields are views of the whole record, which the cache must not keep.
    openedVersions.add(header.id, {
      authenticated: header.authenticated.slice(),
      kek,
      stanza,
      secret,
      keys,
    });
  }
  return { secret, keys, meta };
}

/** An opened KVC1 record: the pipeline's view plus what `rewrap` needs. */
export interface OpenedSealedRecord extends OpenedRecord {
  /** The parsed header. */
  readonly header: SealedHeader;
  /** The version keys. */
  readonly keys: VersionKeys;
  /** The unwrapped secret S. */
  readonly secret: Uint8Array;
}

/**
 * Decrypt order steps 2–4 for a header parsed by {@linkcode parseHeader};
 * `prefetch` holds chunk batches already requested for it, if any. With
 * `openAhead`, a single batch that holds the whole blob is opened (step 5)
 * while the metadata is checked (step 4): its plaintext comes out only with
 * the record, so only after step 4 passed.
 */
export async function openParsedRecord(
  header: SealedHeader,
  key: Deno.KvKey,
  readKeys: readonly KeyringEntry[],
  what: string,
  prefetch?: readonly Prefetch[],
  openAhead = false,
): Promise<OpenedSealedRecord> {
  const only = openAhead ? wholeBatch(prefetch, header.chunks) : undefined;
  let opened: Promise<Uint8Array[]> | undefined;
  const openBatch = (keys: VersionKeys) => {
    opened = only!.stored.then((stored) =>
      Promise.all(stored.map((chunk, index) => openChunk(keys, header, index, chunk, what)))
    );
    // Awaited by the reader; a failed step 4 leaves it unread.
    opened.catch(() => {});
  };
  const { secret, keys, meta } = await openVersion(
    header,
    key,
    readKeys,
    what,
    only ? openBatch : undefined,
  );
  return {
    id: header.id,
    chunkSize: header.chunkSize,
    size: header.size,
    chunks: header.chunks,
    expiresAt: header.expiresAt,
    encrypted: true,
    meta,
    kids: header.stanzas.map((stanza) => stanza.kid),
    inline: header.inline,
    prefetch: only && opened ? [{ ...only, opened }] : prefetch,
    header,
    keys,
    secret,
    openChunk: (index, stored) => openChunk(keys, header, index, stored, what),
    damaged: (problem) => new DecryptionError(`Cannot decrypt ${what}: ${problem} (step 5)`),
  };
}

/** Step 5 for one chunk: it must open under its own nonce and have the expected length. */
async function openChunk(
  keys: VersionKeys,
  layout: RecordLayout,
  index: number,
  stored: Uint8Array,
  what: string,
): Promise<Uint8Array> {
  let plaintext: Uint8Array;
  try {
    plaintext = await gcmOpen(keys.kenc, chunkNonce(keys.n0, index), stored);
  } catch (cause) {
    fail(what, `chunk ${index} does not open (step 5)`, cause);
  }
  // Stops a valid chunk of another position or a truncated blob from passing.
  if (plaintext.length !== chunkLength(layout, index)) {
    fail(what, `chunk ${index} has the wrong length (step 5)`, undefined);
  }
  return plaintext;
}

/** The write side: a fresh S wrapped for every recipient's current key. */
export async function createSealedFormat(
  recipients: readonly Keyring[],
  id: Uint8Array,
  random: RandomSource = systemRandom,
): Promise<WriteFormat> {
  const first = recipients[0];
  if (first === undefined) throw new TypeError("Cannot encrypt: no recipient key");
  // Keeps the record inside one KV value whatever the recipients.
  if (recipients.length > STANZAS_MAX) {
    throw new RangeError(
      `Cannot encrypt for ${recipients.length} recipients: at most ${STANZAS_MAX}`,
    );
  }
  const secret = random.bytes(SECRET_BYTES, "secret");
  const writers = recipients.map((ring) => ring.current);
  // A key held elsewhere has no length to follow: its blobs use AES-256.
  const suite = isKeyWrapper(first.current) ? SUITE_AES_256_GCM : suiteOf(first.current.key);
  let wrapping: Promise<Stanza[]> | undefined;
  const wrap = () => {
    if (wrapping === undefined) {
      wrapping = Promise.all(writers.map((writer) => wrapSecret(writer, secret, id, random)));
      // Awaited by encodeRecord; until then a rejection is not unhandled.
      wrapping.catch(() => {});
    }
    return wrapping;
  };
  // A key service is heard before any chunk goes out: its refusal stops the
  // write at once. Local keys wrap once chunk 0 is being sealed, so the
  // larger job starts first (each Web Crypto call blocks this thread a while).
  if (writers.some(isKeyWrapper)) await wrap();
  const keys = await deriveVersionKeys(secret, id, suite);
  return {
    chunkSize: SEALED_CHUNK_SIZE,
    // With a wrapper the header may grow to KVC2's largest: inline only what still fits then.
    inlineMax: writers.some(isKeyWrapper) ? WRAPPED_INLINE_MAX : SEALED_INLINE_MAX,
    sealChunk: (index, plaintext) => {
      const sealed = sealChunk(keys, index, plaintext);
      wrap();
      return sealed;
    },
    encodeRecord: async (layout, meta, key, inline) => {
      const stanzas = await wrap();
      const header = await sealHeader(
        { ...layout, suite, commitment: keys.commitment, stanzas },
        keys,
        meta,
        key,
        random,
      );
      rememberWritten(layout.id, header.authenticated, writers, secret, keys);
      if (inline) return concat([header.bytes, inline]);
      // Parsed from the bytes themselves, never from the fields they were made of:
      // reading them back in this process then skips step 1, as a repeated read does.
      const copy = header.bytes.slice();
      parsedHeaders.add(copy, parseHeader(copy));
      return header.bytes;
    },
  };
}

/**
 * Caches a version this process sealed, under its first local recipient key,
 * so reading it back skips steps 2 and 3 as a repeated read does: the entry
 * is found only by these exact header bytes and that very key.
 */
function rememberWritten(
  id: Uint8Array,
  authenticated: Uint8Array,
  writers: readonly KeyringEntry[],
  secret: Uint8Array,
  keys: VersionKeys,
): void {
  const stanza = writers.findIndex((writer) => !isKeyWrapper(writer));
  // A wrapper's secret is never cached: its key service sees every read.
  if (stanza < 0) return;
  const kek = (writers[stanza] as KeyEntry).key;
  openedVersions.add(id, { authenticated, kek, stanza, secret, keys });
}
