/**
 * The kv-toolbox 0.30 fixture (`testdata/kv-toolbox-0.30/`: a SQLite file
 * kv-toolbox wrote itself, and its manifest), opened for the tests: a fresh
 * copy per test, in a temporary file or in memory.
 *
 * @module
 */

import assert from "node:assert/strict";
import { withKv, withTempDir } from "./util.ts";

/** The fixture's folder. */
const FIXTURE = new URL("../testdata/kv-toolbox-0.30/", import.meta.url);

/** One blob the manifest lists, as kv-toolbox stored it. */
export interface ManifestBlob {
  key: Deno.KvKey;
  encrypted: boolean;
  kind: "buffer" | "blob" | "file";
  size: number;
  sha256?: string;
  type?: string;
  name?: string;
  lastModified?: number;
}

/** The fixture's manifest: the key kv-toolbox encrypted with, and every blob it stored. */
export const MANIFEST: { encryptionKeyHex: string; blobs: ManifestBlob[] } = JSON.parse(
  await Deno.readTextFile(new URL("manifest.json", FIXTURE)),
);

/** The kv-toolbox key of the fixture's encrypted blobs, in hex. */
export const KV_TOOLBOX_KEY: string = MANIFEST.encryptionKeyHex;

/** Runs `fn` on a fresh copy of the fixture database, in a temporary file deleted afterwards. */
export async function withFixtureFile<T>(fn: (kv: Deno.Kv) => Promise<T>): Promise<T> {
  return await withTempDir(async (dir) => {
    const path = `${dir}/kv.sqlite3`;
    await Deno.copyFile(new URL("kv-toolbox-0.30.sqlite3", FIXTURE), path);
    return await withKv(fn, { path });
  });
}

/** The fixture's entries, read once. */
export async function fixtureEntries(): Promise<Deno.KvEntry<unknown>[]> {
  return await withFixtureFile((kv) => Array.fromAsync(kv.list({ prefix: [] })));
}

/** Entries per atomic when copying the fixture: its parts are up to 63,000 bytes. */
const ENTRIES_PER_ATOMIC = 8;

/** Runs `fn` on an in-memory store holding the fixture's entries (its keys and values exactly). */
export async function withMemoryFixture<T>(
  entries: readonly Deno.KvEntry<unknown>[],
  fn: (kv: Deno.Kv) => Promise<T>,
): Promise<T> {
  return await withKv(async (kv) => {
    for (let i = 0; i < entries.length; i += ENTRIES_PER_ATOMIC) {
      const op = kv.atomic();
      for (const entry of entries.slice(i, i + ENTRIES_PER_ATOMIC)) op.set(entry.key, entry.value);
      assert.ok((await op.commit()).ok);
    }
    return await fn(kv);
  });
}

/** Declares a test that runs `fn` on a fresh copy of the fixture ({@linkcode withFixtureFile}). */
export function fixtureTest(name: string, fn: (kv: Deno.Kv) => Promise<void>): void {
  Deno.test(name, () => withFixtureFile(fn));
}
