/**
 * Small helpers shared by the blob tests: random bytes, streams from pieces,
 * collecting a stream, and counting kvcrypt's internal entries in a store.
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

/** Asserts two byte arrays are equal, reporting the first difference (fast for MiBs). */
export function assertBytes(actual: Uint8Array, expected: Uint8Array, label = "bytes"): void {
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

/** How long one store test may run before it fails instead of hanging (a retry loop gone wrong). */
const TEST_TIMEOUT_MS = 15_000;

/** Runs `fn` against a fresh in-memory store that is always closed afterwards. */
export function kvTest(
  name: string,
  fn: (kv: Deno.Kv) => Promise<void>,
  options: { ignore?: boolean } = {},
): void {
  Deno.test({
    name,
    ignore: options.ignore ?? false,
    async fn() {
      const kv = await Deno.openKv(":memory:");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${TEST_TIMEOUT_MS} ms`)),
          TEST_TIMEOUT_MS,
        );
      });
      try {
        await Promise.race([fn(kv), timeout]);
      } finally {
        clearTimeout(timer);
        kv.close();
      }
    },
  });
}
