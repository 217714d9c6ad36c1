/**
 * Where this process last saw each blob: per store handle, a bounded map of
 * user key → the version id and chunk count its record named, learnt from
 * the writes it committed and the records it opened. A whole read of a key
 * with a hint asks for the record and for the hinted version's first chunks
 * at once (in one `getMany` for a small blob, else list pages alongside), so
 * a blob this process wrote or read before costs one round trip instead of
 * two.
 *
 * A hint is never trusted: the chunks it fetched are used only when the
 * record, read in the same wave, names the same version id and chunk count.
 * A version's chunks are written once, before any record names the version,
 * and are never changed, only deleted, so chunks fetched under the id the
 * record names are that version's chunks, whether they came from the
 * record's own snapshot or from a list that ran before or after it
 * (FORMAT.md, "Reading a blob"). A stale hint costs the reads it asked for,
 * which find nothing once the old version's chunks are deleted.
 *
 * @module
 */

import { toHex } from "./_bytes.ts";
import { Lru } from "./_lru.ts";
import { describeKey } from "./_user_key.ts";

/**
 * Keys remembered per store handle: a server's working set of hot files; an
 * entry is the key's description plus 16 id bytes, so with keys of ~100
 * characters the map stays around 300 KiB.
 */
export const VERSION_HINTS_MAX = 1_024;

/** The facts a read needs to fetch a version's first chunks before its record arrives. */
export interface VersionHint {
  /** The version id: the chunk key part. */
  readonly id: Uint8Array;
  /** Its chunk count. */
  readonly chunks: number;
}

/** Per store handle (a `Deno.Kv`, an `@deno/kv` `Kv`, a wrapper), keyed by {@linkcode hintKey}. */
const hintsByStore = new WeakMap<object, Lru<string, VersionHint>>();

function hintsOf(kv: object): Lru<string, VersionHint> {
  let hints = hintsByStore.get(kv);
  if (hints === undefined) {
    hints = new Lru(VERSION_HINTS_MAX);
    hintsByStore.set(kv, hints);
  }
  return hints;
}

/**
 * The map key of a user key: its description, with the bytes of byte parts
 * spelt out. Cheaper than `encodeKey` on the read path; two keys that share
 * a map key would only share a hint, which the record read corrects.
 */
function hintKey(key: Deno.KvKey): string {
  if (!key.some((part) => part instanceof Uint8Array)) return describeKey(key);
  return key.map((part) => part instanceof Uint8Array ? `<${toHex(part)}>` : describeKey([part]))
    .join("");
}

/** The hint for `key` in this store handle, if there is one (and marks it recently used). */
export function recallVersion(kv: object, key: Deno.KvKey): VersionHint | undefined {
  return hintsByStore.get(kv)?.use(hintKey(key));
}

/**
 * Remembers the version a record at `key` names, or forgets the key when
 * there is nothing to fetch ahead (no record, an inline blob, no chunks).
 */
export function rememberVersion(
  kv: object,
  key: Deno.KvKey,
  layout: { readonly id: Uint8Array; readonly chunks: number; readonly inline: boolean } | null,
): void {
  const name = hintKey(key);
  if (layout === null || layout.inline || layout.chunks === 0) {
    hintsByStore.get(kv)?.delete(name);
    return;
  }
  // A copy: a parsed record's id is a view that would keep the whole record alive.
  hintsOf(kv).set(name, { id: layout.id.slice(), chunks: layout.chunks });
}
