/**
 * The format version policy (FORMAT.md, "Format versions and compatibility"): a record in a
 * format newer than this version reads (a magic such as "KVC3" or "KVP2") is
 * left alone. Reads fail with an error that names the format, `vacuum` keeps
 * its chunks, and `list` does not report it. Values kvcrypt does not own
 * (another magic, or none) still count as not kvcrypt's.
 */

import assert from "node:assert/strict";
import { CorruptBlobError, get, getMeta, list, set, vacuum } from "./blob.ts";
import { DecryptionError } from "./crypto.ts";
import { generateKey } from "./keys.ts";
import { newerFormatMagic } from "./_record.ts";
import {
  assertBytes,
  assertRejects,
  internalEntries,
  kvTest,
  randomBytes,
} from "./_testing/util.ts";

/** Larger than one inline record: the blob has chunks and a version entry vacuum could free. */
const SIZE = 200_000;

/** Rewrites the magic of the record at `key`, keeping every other byte. */
async function setMagic(kv: Deno.Kv, key: Deno.KvKey, magic: string): Promise<void> {
  const entry = await kv.get<Uint8Array>(key);
  assert.ok(entry.value instanceof Uint8Array, "a record is stored");
  const changed = entry.value.slice();
  changed.set(new TextEncoder().encode(magic));
  await kv.set(key, changed);
}

Deno.test("newerFormatMagic() names magics of the kvcrypt family this version does not know", () => {
  const bytes = (text: string) => new TextEncoder().encode(`${text}...`);
  for (const magic of ["KVC3", "KVP2", "KVC0", "KVX1", "KVV9"]) {
    assert.equal(newerFormatMagic(bytes(magic)), magic);
  }
  for (const other of ["KVP1", "KVC1", "KVC2", "KVV1", "KVc2", "KV22", "XVC2", "KVC", "kvc2"]) {
    assert.equal(newerFormatMagic(bytes(other)), undefined, other);
  }
  assert.equal(newerFormatMagic("KVC3 as text"), undefined);
  assert.equal(newerFormatMagic(new TextEncoder().encode("KVC")), undefined);
});

for (const encrypted of [false, true]) {
  const magic = encrypted ? "KVC3" : "KVP2";
  const label = encrypted ? "an encrypted" : "a plain";

  kvTest(
    `${label} record in format ${magic} is left alone, and reads again once known`,
    async (kv) => {
      const encryptionKey = encrypted ? await generateKey() : undefined;
      const options = encryptionKey === undefined ? {} : { encryptionKey };
      const bytes = randomBytes(SIZE);
      await set(kv, ["doc"], bytes, options);
      const before = await internalEntries(kv);
      assert.ok(before.chunks > 0, "the blob has chunks");
      await setMagic(kv, ["doc"], magic);

      const ErrorClass = encrypted ? DecryptionError : CorruptBlobError;
      const message = new RegExp(
        `^Cannot .*\\["doc"\\].*format ${magic}, which a newer kvcrypt wrote`,
      );
      const error = await assertRejects(get(kv, ["doc"], options), ErrorClass);
      assert.match(error.message, message);
      await assertRejects(getMeta(kv, ["doc"], options), ErrorClass);
      if (encrypted) {
        // Without a key, too, the reader says which format it met.
        await assertRejects(get(kv, ["doc"]), CorruptBlobError, message);
      }
      assert.deepEqual(await Array.fromAsync(list(kv, { prefix: [] }, options)), []);

      // Vacuum cannot tell which version a newer record points to, so it frees none.
      assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 1 });
      assert.deepEqual(await internalEntries(kv), before);

      // Nothing was lost: with the magic this version knows, the same bytes read back.
      await setMagic(kv, ["doc"], encrypted ? "KVC1" : "KVP1");
      assertBytes((await get(kv, ["doc"], options)).value!, bytes);
    },
  );
}

kvTest(
  "vacuum() still frees a version whose key now holds a value kvcrypt does not own",
  async (kv) => {
    await set(kv, ["doc"], randomBytes(SIZE));
    await kv.set(["doc"], new TextEncoder().encode("XYZ1 another library's bytes"));
    const before = await internalEntries(kv);
    const removed = await vacuum(kv, { olderThan: 0 });
    assert.deepEqual(removed, { versions: 1, chunks: before.chunks, skipped: 0 });
    assert.equal((await internalEntries(kv)).keys.size, 0);
  },
);
