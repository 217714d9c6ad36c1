/**
 * Tests of `StagedBlob.commit(op)`: it commits the caller's atomic with the
 * staged record and does what `complete` does, so a caller needs neither
 * `complete` nor a try/catch: success, a failed check, a commit that throws
 * before or after applying (a lost reply), a deadline that passed, and an
 * atomic that already carries `addTo`.
 */

import assert from "node:assert/strict";
import { get, set, stage } from "./blob.ts";
import { keepBlob } from "./_testing/blob_values.ts";
import { faultyKv, InjectedFault } from "./_testing/faulty_kv.ts";
import { assertInternalCounts, CHUNK } from "./_testing/plain_record.ts";
import { assertBytes, assertRejects, kvTest, randomBytes } from "./_testing/util.ts";

kvTest(
  "stage().commit(op) commits the blob with the caller's mutations and removes the old chunks",
  async (kv) => {
    await set(kv, ["doc"], randomBytes(4 * CHUNK));
    const next = randomBytes(13 * CHUNK + 9);
    const staged = await stage(kv, ["doc"], next);
    const result = await staged.commit(kv.atomic().set(["index", "latest"], "doc"));
    assert.equal(result.ok, true);
    assert.equal((await kv.get(["doc"])).versionstamp, result.ok ? result.versionstamp : null);
    assert.equal((await kv.get(["index", "latest"])).value, "doc");
    assertBytes((await get(kv, ["doc"])).value!, next);
    await assertInternalCounts(kv, next.length, "only the new version's entries");
    await staged.complete(result); // already done: nothing changes
    assertBytes((await get(kv, ["doc"])).value!, next);
  },
);

kvTest(
  "stage().commit(op) with a failed check writes nothing and removes the staged chunks",
  async (kv) => {
    await kv.set(["index"], 0);
    const kept = await keepBlob(kv, ["doc"], 2 * CHUNK);
    const staged = await stage(kv, ["doc"], randomBytes(6 * CHUNK));
    const op = kv.atomic().check({ key: ["index"], versionstamp: null }).set(["other"], 1);
    const result = await staged.commit(op);
    assert.equal(result.ok, false);
    await kept.assertUntouched("the store is as before stage()");
  },
);

kvTest(
  "stage().commit(op) whose key changed since stage() resolves { ok: false }, cleaned",
  async (kv) => {
    await set(kv, ["doc"], randomBytes(2 * CHUNK));
    const staged = await stage(kv, ["doc"], randomBytes(5 * CHUNK));
    const other = randomBytes(3 * CHUNK + 1);
    await set(kv, ["doc"], other); // another writer wins the race
    assert.equal((await staged.commit(kv.atomic().set(["index"], 1))).ok, false);
    assert.equal(
      (await kv.get(["index"])).versionstamp,
      null,
      "the caller's atomic did not commit",
    );
    await assertInternalCounts(kv, other.length, "no staged chunk left");
    assertBytes((await get(kv, ["doc"])).value!, other);
  },
);

kvTest(
  "stage().commit(op) rejects with the commit's error and removes the staged chunks",
  async (kv) => {
    const kept = await keepBlob(kv, ["doc"], 2 * CHUNK);
    const staged = await stage(kv, ["doc"], randomBytes(13 * CHUNK));
    // Deno KV refuses a value over 64 KiB when the atomic commits.
    const op = kv.atomic().set(["too big"], new Uint8Array(70_000));
    await assert.rejects(staged.commit(op), TypeError);
    await kept.assertUntouched();
  },
);

kvTest(
  "stage().commit(op) whose commit fails before applying rejects with its error, cleaned",
  async (kv) => {
    const kept = await keepBlob(kv, ["doc"], 2 * CHUNK);
    const staged = await stage(kv, ["doc"], randomBytes(4 * CHUNK));
    const faulty = faultyKv(kv, { failAt: 1, mode: "before" });
    await assert.rejects(staged.commit(faulty.kv.atomic().set(["index"], 1)), InjectedFault);
    await kept.assertUntouched();
  },
);

kvTest(
  "stage().commit(op) whose reply is lost after applying resolves ok and keeps the new blob",
  async (kv) => {
    await set(kv, ["doc"], randomBytes(2 * CHUNK));
    const next = randomBytes(3 * CHUNK);
    const staged = await stage(kv, ["doc"], next);
    const faulty = faultyKv(kv, { failAt: 1, mode: "after" });
    const result = await staged.commit(faulty.kv.atomic().set(["index"], 1));
    assert.equal(faulty.injected.length, 1, "the commit's reply was lost");
    assert.equal(result.ok, true);
    assert.equal((await kv.get(["doc"])).versionstamp, result.ok ? result.versionstamp : null);
    assert.equal((await kv.get(["index"])).value, 1);
    assertBytes((await get(kv, ["doc"])).value!, next);
    await assertInternalCounts(kv, next.length, "the old version is removed, the new one kept");
  },
);

kvTest(
  "stage().commit(op) after the expireIn deadline rejects with a RangeError, cleaned",
  async (kv) => {
    const kept = await keepBlob(kv, ["doc"], 2 * CHUNK);
    const staged = await stage(kv, ["doc"], randomBytes(3 * CHUNK), { expireIn: 20 });
    await new Promise((resolve) => setTimeout(resolve, 40));
    await assertRejects(staged.commit(kv.atomic().set(["index"], 1)), RangeError, /expireIn/);
    assert.equal(
      (await kv.get(["index"])).versionstamp,
      null,
      "the caller's atomic did not commit",
    );
    await kept.assertUntouched();
  },
);

kvTest(
  "stage().commit(op) of an atomic that already carries addTo adds the record once",
  async (kv) => {
    const next = randomBytes(5 * CHUNK);
    const staged = await stage(kv, ["doc"], next);
    const result = await staged.commit(staged.addTo(kv.atomic()).set(["index"], 1));
    assert.equal(result.ok, true);
    assertBytes((await get(kv, ["doc"])).value!, next);
    await assertInternalCounts(kv, next.length, "the staged version only");
  },
);

kvTest(
  "stage().commit(op) after complete() or a first commit() throws TypeError and changes nothing",
  async (kv) => {
    const kept = await keepBlob(kv, ["doc"], 5 * CHUNK);
    const settled = await stage(kv, ["doc"], randomBytes(10));
    await settled.complete({ ok: false }); // nothing committed: the staged version is removed
    const pattern =
      /^Cannot commit the staged blob at \["doc"\]: it was already committed or completed$/;
    await assertRejects(settled.commit(kv.atomic()), TypeError, pattern);
    await kept.assertUntouched("a settled staged blob never commits");
    const next = randomBytes(3 * CHUNK);
    const once = await stage(kv, ["doc"], next);
    assert.equal((await once.commit(kv.atomic())).ok, true);
    const after = await kv.get(["doc"]);
    await assertRejects(once.commit(kv.atomic()), TypeError, pattern);
    assert.equal((await kv.get(["doc"])).versionstamp, after.versionstamp, "committed once");
    assertBytes((await get(kv, ["doc"])).value!, next);
    await assertInternalCounts(kv, next.length, "only the new version's entries");
  },
);
