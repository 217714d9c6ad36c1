/**
 * Key rotation: `rotate` over blobs (header only, and `reencrypt`) and
 * `cryptoKv(...).rotate` over values, with writers racing them, aborts and
 * re-runs, recipients outside the ring, and a key service as the new key.
 */

import assert from "node:assert/strict";
import { serviceWrapper, startKeyService } from "./_testing/key_service.ts";
import { deriveVersionKeys, parseHeader } from "./_kvc1.ts";
import { parseValue } from "./_kvv1.ts";
import { openEntry } from "./_chunk_reader.ts";
import { readTarget } from "./_read_protocol.ts";
import { isSealed } from "./_rewrap.ts";
import { assertBytes, assertRejects, kvTest, randomBytes } from "./_testing/util.ts";
import { get, getAsBlob, rotate, type RotateResult, set } from "./blob.ts";
import { cryptoKv, DecryptionError } from "./crypto.ts";
import { generateKey, keyring } from "./keys.ts";

/** Items per run: enough for a writer to race the rotation for a while. */
const ITEMS = 500;
/** Every 25th blob is chunked (200 KB), the rest inline. */
function sizeOf(i: number): number {
  return i % 25 === 0 ? 200_000 + i : 100 + i;
}

/** The kids of the stanzas of the blob at `key`. */
async function kidsOf(kv: Deno.Kv, key: Deno.KvKey): Promise<string[]> {
  return parseHeader((await kv.get<Uint8Array>(key)).value!).stanzas.map((stanza) => stanza.kid);
}

/** Keys "old" and "new", and the ring that rotates from one to the other. */
async function keys() {
  const old = await generateKey({ kid: "old" });
  const fresh = await generateKey({ kid: "new" });
  return { old, fresh, ring: await keyring(fresh, old) };
}

for (const reencrypt of [false, true]) {
  kvTest(
    `rotate(${
      reencrypt ? "{ reencrypt }" : ""
    }) moves 500 blobs to the current key while another task overwrites some`,
    async (kv) => {
      const { old, fresh, ring } = await keys();
      const latest = new Map<number, Uint8Array>();
      for (let i = 0; i < ITEMS; i++) {
        const data = randomBytes(sizeOf(i));
        latest.set(i, data);
        await set(kv, ["docs", i], data, { encryptionKey: old });
      }
      let stop = false;
      const writer = (async () => {
        let writes = 0;
        // Bounded: at most ITEMS overwrites, stops when the rotation is done.
        for (let n = 0; n < ITEMS && !stop; n++) {
          const i = (n * 37) % ITEMS;
          const data = randomBytes(sizeOf(i) + 1);
          await set(kv, ["docs", i], data, { encryptionKey: ring });
          latest.set(i, data);
          writes++;
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        return writes;
      })();
      const progress: RotateResult[] = [];
      const result = await rotate(kv, { prefix: ["docs"] }, {
        encryptionKey: ring,
        reencrypt,
        onProgress: (counts) => progress.push(counts),
      });
      stop = true;
      const writes = await writer;
      assert.ok(writes > 0, "the writer raced the rotation");
      assert.equal(result.failed, 0);
      assert.equal(result.rotated + result.unchanged + result.skipped, ITEMS);
      assert.equal(progress.length, ITEMS, "progress after every blob");
      assert.deepEqual(progress.at(-1), result);
      for (let i = 0; i < ITEMS; i++) {
        const value = (await get(kv, ["docs", i], { encryptionKey: fresh })).value!;
        assertBytes(
          value,
          latest.get(i)!,
          `docs ${i}: the current key alone reads the latest content`,
        );
        assert.deepEqual(await kidsOf(kv, ["docs", i]), ["new"]);
      }
      const again = await rotate(kv, { prefix: ["docs"] }, { encryptionKey: ring });
      assert.deepEqual(again, { rotated: 0, unchanged: ITEMS, skipped: 0, failed: 0 });
    },
  );
}

kvTest(
  "rotate() aborted half way rejects with the reason, and a second run completes",
  async (kv) => {
    const { old, fresh, ring } = await keys();
    for (let i = 0; i < 60; i++) {
      await set(kv, ["d", i], randomBytes(sizeOf(i)), { encryptionKey: old });
    }
    const controller = new AbortController();
    const reason = new Error("stop here");
    await assert.rejects(
      rotate(kv, { prefix: ["d"] }, {
        encryptionKey: ring,
        signal: controller.signal,
        onProgress: (counts) => {
          if (counts.rotated === 20) controller.abort(reason);
        },
      }),
      (error) => error === reason,
    );
    const second = await rotate(kv, { prefix: ["d"] }, { encryptionKey: ring });
    assert.deepEqual(second, { rotated: 40, unchanged: 20, skipped: 0, failed: 0 });
    for (let i = 0; i < 60; i++) {
      assert.ok((await get(kv, ["d", i], { encryptionKey: fresh })).value, `d ${i}`);
    }
  },
);

kvTest(
  "rotate() keeps other recipients' stanzas and skips blobs the ring cannot open",
  async (kv) => {
    const { old, fresh, ring } = await keys();
    const bob = await generateKey({ kid: "bob" });
    await set(kv, ["shared"], randomBytes(70_000), { recipients: [old, bob] });
    await set(kv, ["bobs"], randomBytes(10), { encryptionKey: bob });
    await set(kv, ["both"], randomBytes(10), { recipients: [fresh, old] });
    await set(kv, ["plain"], randomBytes(10));
    await kv.set(["other"], "not a blob");
    const result = await rotate(kv, { prefix: [] }, { encryptionKey: ring });
    assert.deepEqual(result, { rotated: 2, unchanged: 0, skipped: 1, failed: 0 });
    assert.deepEqual(await kidsOf(kv, ["shared"]), ["bob", "new"]);
    assert.deepEqual(
      await kidsOf(kv, ["both"]),
      ["new"],
      "an older stanza beside the current one goes",
    );
    assert.deepEqual(await kidsOf(kv, ["bobs"]), ["bob"]);
    assert.equal((await get(kv, ["shared"], { encryptionKey: bob })).value?.length, 70_000);
  },
);

kvTest("rotate() counts a blob whose stanza for the ring does not open as failed", async (kv) => {
  const { old, ring } = await keys();
  await set(kv, ["doc"], randomBytes(10), { encryptionKey: old });
  const impostor = await generateKey({ kid: "old" }); // same kid, another key
  await set(kv, ["forged"], randomBytes(10), { encryptionKey: impostor });
  const result = await rotate(kv, { prefix: [] }, { encryptionKey: ring });
  assert.deepEqual(result, { rotated: 1, unchanged: 0, skipped: 0, failed: 1 });
});

kvTest(
  "rotate({ reencrypt }) writes every blob under a fresh secret: the old key and the old secret read nothing",
  async (kv) => {
    const { old, fresh, ring } = await keys();
    const bob = await generateKey({ kid: "bob" });
    const files = new Map<number, File>();
    const secrets = new Map<number, Uint8Array>();
    for (let i = 0; i < 40; i++) {
      const file = new File([randomBytes(sizeOf(i))], `f${i}.bin`, {
        type: "application/pdf",
        lastModified: 1_000 + i,
      });
      files.set(i, file);
      await set(kv, ["f", i], file, { encryptionKey: old, expireIn: 3_600_000 });
      const { record } = await openEntry(readTarget(kv, ["f", i], { encryptionKey: old }, "read"));
      assert.ok(record && isSealed(record));
      secrets.set(i, record.secret);
    }
    await set(kv, ["with-bob"], randomBytes(10), { recipients: [old, bob] });
    const oldRecords = new Map<number, Uint8Array>();
    for (let i = 0; i < 40; i++) oldRecords.set(i, (await kv.get<Uint8Array>(["f", i])).value!);

    const result = await rotate(kv, { prefix: [] }, { encryptionKey: ring, reencrypt: true });
    assert.deepEqual(result, { rotated: 40, unchanged: 0, skipped: 1, failed: 0 });
    for (let i = 0; i < 40; i++) {
      const back = (await getAsBlob(kv, ["f", i], { encryptionKey: fresh }))!;
      const file = files.get(i)!;
      assert.ok(back instanceof File);
      assert.deepEqual([back.name, back.type, back.lastModified], [
        file.name,
        file.type,
        file.lastModified,
      ]);
      assertBytes(
        new Uint8Array(await back.arrayBuffer()),
        new Uint8Array(await file.arrayBuffer()),
      );
      await assertRejects(get(kv, ["f", i], { encryptionKey: old }), DecryptionError);
      const header = parseHeader((await kv.get<Uint8Array>(["f", i])).value!);
      assert.deepEqual(header.stanzas.map((stanza) => stanza.kid), ["new"]);
      assert.notDeepEqual(header.id, parseHeader(oldRecords.get(i)!).id, "a new version");
      // Whoever kept the old secret cannot open the new version with it: its commitment differs.
      const stale = await deriveVersionKeys(secrets.get(i)!, header.id, header.suite);
      assert.notDeepEqual(stale.commitment, header.commitment);
      assert.ok(header.expiresAt > Date.now() + 3_500_000, "the deadline is kept");
    }
    // A recipient outside the ring is never dropped silently.
    assert.deepEqual(await kidsOf(kv, ["with-bob"]), ["old", "bob"]);
    assert.ok((await get(kv, ["with-bob"], { encryptionKey: bob })).value);
  },
);

kvTest("rotate() moves blobs from a local key to a key held in a key service", async (kv) => {
  await using service = await startKeyService();
  const local = await generateKey({ kid: "env-key" });
  const wrapper = serviceWrapper(service, "kms");
  for (let i = 0; i < 10; i++) {
    await set(kv, ["d", i], randomBytes(sizeOf(i)), { encryptionKey: local });
  }
  const ring = await keyring(wrapper, local);
  assert.equal((await rotate(kv, { prefix: ["d"] }, { encryptionKey: ring })).rotated, 10);
  const reencrypted = await rotate(kv, { prefix: ["d"] }, { encryptionKey: ring, reencrypt: true });
  assert.equal(reencrypted.rotated, 10);
  for (let i = 0; i < 10; i++) {
    assert.equal((await get(kv, ["d", i], { encryptionKey: wrapper })).value?.length, sizeOf(i));
    await assertRejects(get(kv, ["d", i], { encryptionKey: local }), DecryptionError);
  }
});

kvTest("rotate() refuses an array of recipients and a missing key with TypeError", async (kv) => {
  const { old, fresh } = await keys();
  await assertRejects(
    rotate(kv, { prefix: [] }, { encryptionKey: [fresh, old] as never }),
    TypeError,
    /^Cannot rotate blobs: encryptionKey must be one key ring/,
  );
  await assertRejects(rotate(kv, { prefix: [] }, {} as never), TypeError);
});

kvTest(
  "cryptoKv().rotate() re-encrypts 500 values while another task overwrites some",
  async (kv) => {
    const { old, fresh, ring } = await keys();
    const before = cryptoKv(kv, old);
    const latest = new Map<number, unknown>();
    for (let i = 0; i < ITEMS; i++) {
      latest.set(i, { i, text: `value ${i}` });
      await before.set(["v", i], latest.get(i), i % 50 === 0 ? { expireIn: 3_600_000 } : {});
    }
    await kv.set(["v", "plain"], "not encrypted");
    const values = cryptoKv(kv, ring);
    let stop = false;
    const writer = (async () => {
      let writes = 0;
      for (let n = 0; n < ITEMS && !stop; n++) {
        const i = (n * 41) % ITEMS;
        const value = { i, text: `rewritten ${n}` };
        await values.set(["v", i], value);
        latest.set(i, value);
        writes++;
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      return writes;
    })();
    const result = await values.rotate({ prefix: ["v"] });
    stop = true;
    assert.ok(await writer > 0);
    assert.equal(result.failed, 0);
    assert.equal(result.rotated + result.unchanged + result.skipped, ITEMS);
    const current = cryptoKv(kv, fresh);
    for (let i = 0; i < ITEMS; i++) {
      assert.deepEqual((await current.get(["v", i])).value, latest.get(i), `v ${i}`);
    }
    assert.deepEqual(await values.rotate({ prefix: ["v"] }), {
      rotated: 0,
      unchanged: ITEMS,
      skipped: 0,
      failed: 0,
    });
  },
);

kvTest(
  "cryptoKv().rotate() keeps deadlines, resumes after an abort, and skips values of other keys",
  async (kv) => {
    const { old, fresh, ring } = await keys();
    const other = await generateKey({ kid: "other" });
    for (let i = 0; i < 30; i++) await cryptoKv(kv, old).set(["v", i], i, { expireIn: 3_600_000 });
    await cryptoKv(kv, other).set(["v", "x"], "other's");
    const values = cryptoKv(kv, ring);
    const controller = new AbortController();
    await assert.rejects(
      values.rotate({ prefix: ["v"] }, {
        signal: controller.signal,
        onProgress: (counts) => {
          if (counts.rotated === 10) controller.abort(new Error("later"));
        },
      }),
      /later/,
    );
    const second = await values.rotate({ prefix: ["v"] });
    assert.deepEqual(second, { rotated: 20, unchanged: 10, skipped: 1, failed: 0 });
    for (let i = 0; i < 30; i++) {
      assert.equal((await cryptoKv(kv, fresh).get(["v", i])).value, i);
      await assertRejects(cryptoKv(kv, old).get(["v", i]), DecryptionError);
    }
    // The sealed deadline survived the rotation, in the value and in Deno KV.
    for (let i = 0; i < 30; i++) {
      const parsed = parseValue((await kv.get(["v", i])).value, "v");
      assert.equal(parsed.kid, "new");
      assert.ok(parsed.expiresAt > Date.now() + 3_500_000, `v ${i}: deadline kept`);
    }
  },
);

kvTest(
  "rotate() and cryptoKv().rotate() refuse a ring with a key without kid: another reader could be dropped",
  async (kv) => {
    const bare = async () =>
      await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
        "encrypt",
        "decrypt",
      ]);
    const oldBare = await bare();
    const bobBare = await bare();
    await set(kv, ["shared"], randomBytes(70_000), { recipients: [oldBare, bobBare] });
    const before = (await kv.get(["shared"])).versionstamp;
    const fresh = await generateKey({ kid: "new" });
    for (const ring of [await keyring(fresh, oldBare), await keyring(await bare(), fresh)]) {
      for (const reencrypt of [false, true]) {
        await assertRejects(
          rotate(kv, { prefix: [] }, { encryptionKey: ring, reencrypt }),
          TypeError,
          /^Cannot rotate blobs: every key of the ring needs a kid/,
        );
      }
      await assertRejects(cryptoKv(kv, ring).rotate({ prefix: [] }), TypeError);
    }
    assert.equal((await kv.get(["shared"])).versionstamp, before, "nothing changed");
    assert.equal((await get(kv, ["shared"], { encryptionKey: bobBare })).value?.length, 70_000);
  },
);

kvTest("cryptoKv().rotate() leaves kvcrypt's own chunk entries alone", async (kv) => {
  const { old, ring } = await keys();
  const chunk = new Uint8Array(200_000);
  chunk.set(new TextEncoder().encode("KVV1"), 0); // a chunk whose bytes look like a value
  await set(kv, ["blob"], chunk);
  await cryptoKv(kv, old).set(["v"], 1);
  assert.deepEqual(await cryptoKv(kv, ring).rotate({ prefix: [] }), {
    rotated: 1,
    unchanged: 0,
    skipped: 0,
    failed: 0,
  });
});
