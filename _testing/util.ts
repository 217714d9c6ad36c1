/**
 * Small helpers shared by the tests: the one store setup ({@linkcode kvTest},
 * {@linkcode withKv}), the one {@linkcode assertRejects}, random bytes, streams
 * from pieces, collecting a stream, and listing a store's entries.
 *
 * @module
 */

import assert from "node:assert/strict";
import { concat, toHex } from "../_bytes.ts";

/** Largest request `crypto.getRandomValues` accepts. */
const RANDOM_SLICE = 65_536;

/** `size` random bytes, filled in slices `crypto.getRandomValues` accepts. */
export function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += RANDOM_SLICE) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(size, offset + RANDOM_SLICE)));
  }
  return bytes;
}

/** A pull stream that delivers `pieces` one per pull, empty pieces included. */
export function streamOf(pieces: Iterable<Uint8Array>): ReadableStream<Uint8Array> {
  const iterator = pieces[Symbol.iterator]();
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
  });
}

/** Reads a whole stream, asserting every chunk is a Uint8Array, and concatenates it. */
export async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) {
    assert.ok(part instanceof Uint8Array, `stream yielded ${Object.prototype.toString.call(part)}`);
    parts.push(part);
  }
  return concat(parts);
}

/**
 * Asserts `actual` is a byte array equal to `expected`, reporting the first
 * difference (fast for MiBs).
 */
export function assertBytes(
  actual: Uint8Array | null | undefined,
  expected: Uint8Array,
  label = "bytes",
): void {
  assert.ok(actual instanceof Uint8Array, `${label}: no bytes`);
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(`${label}: differ at byte ${i} (${actual[i]} != ${expected[i]})`);
    }
  }
}

/** Lower-case hex of bytes. */
export const hex: (bytes: Uint8Array) => string = toHex;

/** A printable, comparable form of a KV key (binary parts in hex). */
export function keyText(key: Deno.KvKey): string {
  return key.map((part) =>
    part instanceof Uint8Array ? `0x${hex(part)}` : `${typeof part}:${String(part)}`
  ).join("/");
}

/** kvcrypt's internal entries (under `["__kvcrypt__"]`) in a store. */
export interface InternalEntries {
  /** Entries under `["__kvcrypt__", "chunk"]`. */
  chunks: number;
  /** Entries under `["__kvcrypt__", "version"]`. */
  versions: number;
  /** Anything else under `["__kvcrypt__"]`. */
  other: number;
  /** Every internal key, as {@linkcode keyText}. */
  keys: Set<string>;
}

/** Lists and counts kvcrypt's internal entries. */
export async function internalEntries(kv: Deno.Kv): Promise<InternalEntries> {
  const found: InternalEntries = { chunks: 0, versions: 0, other: 0, keys: new Set() };
  for await (const entry of kv.list({ prefix: ["__kvcrypt__"] })) {
    found.keys.add(keyText(entry.key));
    if (entry.key[1] === "chunk") found.chunks++;
    else if (entry.key[1] === "version") found.versions++;
    else found.other++;
  }
  return found;
}

/** Every entry in the store: key text ({@linkcode keyText}) → versionstamp. */
export async function snapshot(kv: Deno.Kv): Promise<Map<string, string>> {
  const entries = new Map<string, string>();
  for await (const entry of kv.list({ prefix: [] })) {
    entries.set(keyText(entry.key), entry.versionstamp);
  }
  return entries;
}

/** Where {@linkcode withKv} opens its store. */
export interface KvOptions {
  /**
   * A file to open the store on (to reopen it later, or to open two stores on
   * one file); without it the store lives in memory.
   *
   * @default {":memory:"}
   */
  path?: string;
}

/**
 * Opens a store, runs `fn` with it and closes the store afterwards, also when
 * `fn` throws: the one way a test gets a store (inside {@linkcode kvTest}, or
 * directly where a test needs a second store or a file-backed one).
 */
export async function withKv<T>(
  fn: (kv: Deno.Kv) => Promise<T> | T,
  options: KvOptions = {},
): Promise<T> {
  const kv = await Deno.openKv(options.path ?? ":memory:");
  try {
    return await fn(kv);
  } finally {
    kv.close();
  }
}

/**
 * Runs `fn` with a fresh temporary directory (for file-backed stores, with
 * {@linkcode withKv}'s `path`), removed afterwards with all it holds.
 */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "kvcrypt-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The options of {@linkcode kvTest}. */
export interface KvTestOptions extends KvOptions {
  /**
   * Skip the test.
   *
   * @default {false}
   */
  ignore?: boolean;
  /**
   * How long the test may run before it fails instead of hanging (a retry loop
   * gone wrong), in milliseconds.
   *
   * @default {15_000}
   */
  timeout?: number;
}

/** How long one store test may run by default: generous for 5 MiB blobs on a busy machine. */
const TEST_TIMEOUT_MS = 15_000;

/** Declares a test that runs `fn` against a fresh store ({@linkcode withKv}), with a timeout. */
export function kvTest(
  name: string,
  fn: (kv: Deno.Kv) => Promise<void>,
  options: KvTestOptions = {},
): void {
  const { ignore = false, timeout = TEST_TIMEOUT_MS, ...kvOptions } = options;
  Deno.test({
    name,
    ignore,
    fn: () => withKv((kv) => withTimeout(fn(kv), timeout), kvOptions),
  });
}

/** `promise`, or a rejection once `ms` milliseconds have passed. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A class of errors, for {@linkcode assertRejects}. */
export type ErrorClass = abstract new (...args: never[]) => Error;

/** Describes a value for a failure message, without dumping large byte arrays. */
function describe(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (value instanceof Blob) return `a Blob of ${value.size} bytes`;
  if (value instanceof ReadableStream) return "a stream";
  try {
    return typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * Asserts that kvcrypt refuses: `call` (a function, called and awaited, or a
 * promise) rejects or throws an error of exactly `ErrorClass` (or of one of
 * several; a subclass does not count), whose message says "Cannot …" as every
 * kvcrypt error does, and matches `pattern`; it must never resolve, not even
 * to null. Returns the error for further checks (its `cause`, what it must
 * not contain).
 *
 * An error kvcrypt only passes on (the caller's abort reason or stream error,
 * a fault a test injected, Web Crypto's own) is not kvcrypt's to word: check
 * it with `assert.rejects` from node:assert/strict, by identity or class.
 */
export async function assertRejects(
  call: (() => unknown) | Promise<unknown>,
  ErrorClass: ErrorClass | readonly ErrorClass[],
  pattern?: RegExp,
  label = "",
): Promise<Error> {
  const allowed = Array.isArray(ErrorClass) ? ErrorClass : [ErrorClass as ErrorClass];
  const expected = allowed.map((c) => c.name).join(" or ");
  const what = label === "" ? "" : `${label}: `;
  let value: unknown;
  try {
    value = await (typeof call === "function" ? call() : call);
  } catch (error) {
    assert.ok(
      allowed.some((c) => error instanceof Error && error.constructor === c),
      `${what}expected ${expected}, got ${describe(error)}`,
    );
    const message = (error as Error).message;
    assert.match(message, /^Cannot /, `${what}message`);
    if (pattern !== undefined) assert.match(message, pattern, `${what}message`);
    return error as Error;
  }
  const shown = value && typeof value === "object" && "value" in value ? value.value : value;
  return assert.fail(`${what}expected ${expected}, but it resolved (value: ${describe(shown)})`);
}
