/**
 * Finds kv-toolbox blobs under a selector without reading their parts: a
 * blob is its metadata entry; the first part seen of a blob is reported (a
 * blob whose metadata is gone but whose parts remain is what an interrupted
 * migration leaves), and the scan then jumps past the rest of its parts and
 * past kvcrypt's own entries, where the selector allows a jump.
 *
 * @module
 */

import type { KvLike } from "./_kv_like.ts";
import { bytesEqual } from "./_bytes.ts";
import { INTERNAL_PREFIX } from "./_kv_keys.ts";
import { blobKeyOfMeta, blobKeyOfPart, KVTB_PARTS } from "./_kv_toolbox_layout.ts";

/** Entries per list page of the scan: one page also brings a few parts after a jump. */
const SCAN_PAGE = 10;

/** Something the scan found. */
export type ScanItem =
  /** A metadata entry: the blob at `key` exists for kv-toolbox. */
  | { kind: "meta"; key: Deno.KvKey; entry: Deno.KvEntry<unknown> }
  /** The first part seen of the blob at `key` (its metadata may or may not follow). */
  | { kind: "parts"; key: Deno.KvKey };

function partsEqual(a: Deno.KvKeyPart, b: Deno.KvKeyPart): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return bytesEqual(a, b);
  return Object.is(a, b);
}

/** Whether `key` starts with every part of `prefix`. */
function startsWith(key: Deno.KvKey, prefix: Deno.KvKey): boolean {
  return key.length >= prefix.length && prefix.every((part, i) => partsEqual(part, key[i]!));
}

/**
 * The selector that continues the scan at `start`, or undefined when the
 * selector has an `end` (a range that `start` might pass) or `start` lies
 * outside its prefix.
 */
function jumpTo(selector: Deno.KvListSelector, start: Deno.KvKey): Deno.KvListSelector | undefined {
  if ("end" in selector || !("prefix" in selector)) return undefined;
  const { prefix } = selector;
  return start.length > prefix.length && startsWith(start, prefix) ? { prefix, start } : undefined;
}

/** Whether two keys are the same. */
function keysEqual(a: Deno.KvKey, b: Deno.KvKey): boolean {
  return a.length === b.length && startsWith(a, b);
}

/** Where the scan goes after an entry, or undefined to read on. */
function skipAfter(
  selector: Deno.KvListSelector,
  key: Deno.KvKey,
): Deno.KvListSelector | undefined {
  const blobKey = blobKeyOfPart(key);
  // Every part number is finite, and numbers sort before Infinity: this lands after the parts.
  if (blobKey !== undefined) return jumpTo(selector, [...blobKey, KVTB_PARTS, Infinity]);
  // kvcrypt's internal keys have strings second, and strings sort before booleans.
  if (key[0] === INTERNAL_PREFIX && typeof key[1] === "string") {
    return jumpTo(selector, [INTERNAL_PREFIX, true]);
  }
  return undefined;
}

/**
 * Yields every kv-toolbox metadata entry under `selector`, and the first part
 * of each blob whose parts it meets.
 *
 * @param kv The store.
 * @param selector As for `Deno.Kv.list`.
 */
export async function* scanKvToolbox(
  kv: KvLike,
  selector: Deno.KvListSelector,
): AsyncGenerator<ScanItem> {
  let current: Deno.KvListSelector | undefined = selector;
  let lastParts: Deno.KvKey | undefined;
  while (current !== undefined) {
    const page: Deno.KvListSelector = current;
    current = undefined;
    for await (const entry of kv.list(page, { batchSize: SCAN_PAGE })) {
      const blobKey = blobKeyOfMeta(entry.key);
      if (blobKey !== undefined) {
        yield { kind: "meta", key: blobKey, entry };
        continue;
      }
      const partsOf = blobKeyOfPart(entry.key);
      if (partsOf !== undefined && !(lastParts !== undefined && keysEqual(lastParts, partsOf))) {
        lastParts = partsOf;
        yield { kind: "parts", key: partsOf };
      }
      current = skipAfter(selector, entry.key);
      if (current !== undefined) break;
    }
  }
}
