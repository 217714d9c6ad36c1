/**
 * The `recipients` write option: one stanza per entry (a key, a key ring's
 * current key, a KeyWrapper), every recipient reads alone through every read
 * function, and `encryptionKey` means one key ring only: an array there, or
 * both options at once, is refused before anything is stored.
 */

import assert from "node:assert/strict";
import {
  get,
  getAsBlob,
  getAsResponse,
  getAsStream,
  getMeta,
  type KeyMaterial,
  list,
  rewrap,
  set,
  stage,
} from "./blob.ts";
import { DecryptionError } from "./crypto.ts";
import { generateKey, keyring } from "./keys.ts";
import { migrateKvToolbox } from "./migrate.ts";
import { parseHeader } from "./_kvc1.ts";
import { STANZAS_MAX } from "./_limits.ts";
import { paddedAesWrapper } from "./_testing/kvc2_vectors.ts";
import { fixtureTest, KV_TOOLBOX_KEY } from "./_testing/kv_toolbox_fixture.ts";
import {
  assertBytes,
  assertRejects,
  keyText,
  kvTest,
  randomBytes,
  snapshot,
} from "./_testing/util.ts";

/** The kids of the stanzas in the record at `key`, in order. */
async function stanzaKids(kv: Deno.Kv, key: Deno.KvKey): Promise<string[]> {
  const record = (await kv.get<Uint8Array>(key)).value!;
  return parseHeader(record).stanzas.map((stanza) => stanza.kid);
}

/** An in-process KeyWrapper (a fresh AES key, random IVs) with outputs of 60 bytes. */
async function localWrapper(kid: string) {
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
  return paddedAesWrapper(kid, key, 60, () => crypto.getRandomValues(new Uint8Array(12)));
}

/** Asserts that every read function opens the blob at `key` with `encryptionKey` alone. */
async function assertEveryReadOpens(
  kv: Deno.Kv,
  key: Deno.KvKey,
  data: Uint8Array,
  encryptionKey: KeyMaterial,
  label: string,
): Promise<void> {
  const options = { encryptionKey };
  assertBytes((await get(kv, key, options)).value!, data, `${label}: get`);
  const stream = (await get(kv, key, { ...options, stream: true })).value!;
  assertBytes(await new Response(stream).bytes(), data, `${label}: get stream`);
  const blob = (await get(kv, key, { ...options, blob: true })).value!;
  assertBytes(await blob.bytes(), data, `${label}: get blob`);
  const ranged = await getAsStream(kv, key, { ...options, range: { start: 1 } });
  assertBytes(await new Response(ranged).bytes(), data.subarray(1), `${label}: getAsStream`);
  assertBytes(await (await getAsBlob(kv, key, options))!.bytes(), data, `${label}: getAsBlob`);
  const response = await getAsResponse(kv, key, options);
  assert.equal(response.status, 200, `${label}: getAsResponse`);
  assertBytes(await response.bytes(), data, `${label}: getAsResponse body`);
  assert.equal((await getMeta(kv, key, options)).value?.verified, true, `${label}: getMeta`);
  const listed = await Array.fromAsync(list(kv, { prefix: [] }, options));
  const found = listed.find((entry) => keyText(entry.key) === keyText(key));
  assert.equal(found?.value.verified, true, `${label}: list`);
}

kvTest("recipients of one: one stanza, as encryptionKey writes it", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  const data = randomBytes(70_000);
  await set(kv, ["one"], data, { recipients: [alice] });
  await set(kv, ["same"], data, { encryptionKey: alice });
  assert.deepEqual(await stanzaKids(kv, ["one"]), ["alice"]);
  assert.deepEqual(await stanzaKids(kv, ["same"]), ["alice"]);
  await assertEveryReadOpens(kv, ["one"], data, alice, "alice");
});

kvTest("recipients of two: two stanzas, and every read opens with either key", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  const bob = await generateKey({ bits: 128, kid: "bob" });
  for (const size of [1_000, 150_000]) {
    const data = randomBytes(size);
    const key = ["two", size];
    await set(kv, key, data, { recipients: [alice, bob] });
    assert.deepEqual(await stanzaKids(kv, key), ["alice", "bob"]);
    for (const reader of [alice, bob]) {
      await assertEveryReadOpens(kv, key, data, reader, `${size} ${reader.kid}`);
    }
    await assertRejects(get(kv, key, { encryptionKey: await generateKey() }), DecryptionError);
  }
});

kvTest("mixed recipients: a local key and a KeyWrapper, in both orders", async (kv) => {
  const local = await generateKey({ kid: "local" });
  const wrapper = await localWrapper("kms");
  const orders: [string, KeyMaterial[], string[]][] = [
    ["key first", [local, wrapper], ["key", "wrapper"]],
    ["wrapper first", [wrapper, local], ["wrapper", "key"]],
  ];
  for (const [label, recipients, forms] of orders) {
    const data = randomBytes(90_000);
    await set(kv, [label], data, { recipients });
    const record = (await kv.get<Uint8Array>([label])).value!;
    assert.deepEqual(parseHeader(record).stanzas.map((stanza) => stanza.form), forms, label);
    await assertEveryReadOpens(kv, [label], data, local, `${label}: local`);
    await assertEveryReadOpens(kv, [label], data, wrapper, `${label}: wrapper`);
  }
});

kvTest(
  "a key ring among recipients is one recipient: its current key gets the stanza",
  async (kv) => {
    const fresh = await generateKey({ kid: "fresh" });
    const old = await generateKey({ kid: "old" });
    const bob = await generateKey({ kid: "bob" });
    const data = randomBytes(10);
    await set(kv, ["ring"], data, { recipients: [await keyring(fresh, old), bob] });
    assert.deepEqual(await stanzaKids(kv, ["ring"]), ["fresh", "bob"]);
    // The same ring as encryptionKey is one stanza too: the shape never adds recipients.
    await set(kv, ["ring", "one"], data, { encryptionKey: { keys: [fresh, old] } });
    assert.deepEqual(await stanzaKids(kv, ["ring", "one"]), ["fresh"]);
  },
);

kvTest("stage() takes recipients like set()", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  const bob = await generateKey({ kid: "bob" });
  const data = randomBytes(200_000);
  const staged = await stage(kv, ["staged"], data, { recipients: [alice, bob] });
  await staged.complete(await staged.addTo(kv.atomic()).commit());
  assert.deepEqual(await stanzaKids(kv, ["staged"]), ["alice", "bob"]);
  await assertEveryReadOpens(kv, ["staged"], data, bob, "bob");
});

kvTest(
  "an array as a write's encryptionKey is a TypeError, and nothing is stored or changed",
  async (kv) => {
    const alice = await generateKey({ kid: "alice" });
    const bob = await generateKey({ kid: "bob" });
    const before = randomBytes(100_000);
    await set(kv, ["doc"], before, { encryptionKey: alice });
    const stored = await snapshot(kv);
    const pattern = /^Cannot store \["doc"\]: .*pass several recipients as `recipients`$/;
    for (const array of [[alice, bob], [alice]]) {
      const options = { encryptionKey: array as unknown as KeyMaterial };
      for (const value of [randomBytes(10), randomBytes(200_000)]) {
        await assertRejects(set(kv, ["doc"], value, options), TypeError, pattern);
        await assertRejects(stage(kv, ["doc"], value, options), TypeError, pattern);
      }
    }
    assert.deepEqual(await snapshot(kv), stored, "nothing written");
    assertBytes((await get(kv, ["doc"], { encryptionKey: alice })).value!, before, "intact");
  },
);

kvTest(
  "recipients together with encryptionKey is a TypeError, and nothing is stored",
  async (kv) => {
    const alice = await generateKey({ kid: "alice" });
    const bob = await generateKey({ kid: "bob" });
    const stored = await snapshot(kv);
    await assertRejects(
      set(kv, ["doc"], randomBytes(100_000), { encryptionKey: alice, recipients: [bob] }),
      TypeError,
      /^Cannot store \["doc"\]: pass encryptionKey or recipients, not both$/,
    );
    assert.deepEqual(await snapshot(kv), stored);
  },
);

kvTest("recipients with one kid twice are a TypeError, and nothing is stored", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  const otherAlice = await generateKey({ kid: "alice" });
  const bob = await generateKey({ kid: "bob" });
  const stored = await snapshot(kv);
  const pattern = /^Cannot store \["doc"\]: two recipients have the kid "alice"$/;
  for (const recipients of [[alice, alice], [alice, bob, otherAlice]]) {
    for (const value of [randomBytes(10), randomBytes(200_000)]) {
      await assertRejects(set(kv, ["doc"], value, { recipients }), TypeError, pattern);
      await assertRejects(stage(kv, ["doc"], value, { recipients }), TypeError, pattern);
    }
  }
  assert.deepEqual(await snapshot(kv), stored, "nothing written");
  // Keys without a kid may repeat: their stanzas are tried with every local key.
  const [a, b] = await Promise.all(
    [1, 2].map(() =>
      crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"])
    ),
  );
  await set(kv, ["anon"], randomBytes(10), { recipients: [a!, b!] });
  assert.equal((await get(kv, ["anon"], { encryptionKey: b! })).value?.length, 10);
});

kvTest("recipients must be an array of 1 to 16 keys", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  const many = await Promise.all(
    Array.from({ length: STANZAS_MAX + 1 }, (_, i) => generateKey({ kid: `k${i}` })),
  );
  const stored = await snapshot(kv);
  const refused: [unknown, ErrorConstructor, RegExp][] = [
    [[], RangeError, /recipients must list 1 to 16 keys$/],
    [alice, TypeError, /recipients must be an array of keys$/],
    [null, TypeError, /recipients must be an array of keys$/],
    [[alice, 42], TypeError, /^Cannot use encryptionKey: expected a CryptoKey/],
    [many, RangeError, /at most 16/],
  ];
  for (const [recipients, ErrorClass, pattern] of refused) {
    const options = { recipients: recipients as KeyMaterial[] };
    await assertRejects(set(kv, ["doc"], randomBytes(10), options), ErrorClass, pattern);
  }
  assert.deepEqual(await snapshot(kv), stored);
  // Exactly 16 is fine.
  await set(kv, ["sixteen"], randomBytes(10), { recipients: many.slice(0, STANZAS_MAX) });
  assert.equal((await stanzaKids(kv, ["sixteen"])).length, STANZAS_MAX);
});

kvTest("rewrap's add is a list of recipients: one stanza per entry", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  const bob = await generateKey({ kid: "bob" });
  const carol = await localWrapper("carol");
  const data = randomBytes(80_000);
  await set(kv, ["doc"], data, { encryptionKey: alice });
  await rewrap(kv, ["doc"], { encryptionKey: alice, add: [bob, carol] });
  assert.deepEqual(await stanzaKids(kv, ["doc"]), ["alice", "bob", "carol"]);
  for (const reader of [alice, bob, carol]) {
    await assertEveryReadOpens(kv, ["doc"], data, reader, reader.kid);
  }
});

kvTest("reads still take an array of keys to try", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  const bob = await generateKey({ kid: "bob" });
  const data = randomBytes(10);
  await set(kv, ["doc"], data, { encryptionKey: bob });
  assertBytes((await get(kv, ["doc"], { encryptionKey: [alice, bob] })).value!, data);
});

fixtureTest(
  "migrateKvToolbox() takes recipients, and refuses an array as encryptionKey",
  async (kv) => {
    const kvToolboxKey = KV_TOOLBOX_KEY;
    const alice = await generateKey({ kid: "alice" });
    const bob = await generateKey({ kid: "bob" });
    const stored = await snapshot(kv);
    const refused = [
      { encryptionKey: [alice, bob] as unknown as KeyMaterial },
      { encryptionKey: alice, recipients: [bob] },
    ];
    for (const options of refused) {
      await assertRejects(
        migrateKvToolbox(kv, { prefix: [] }, { kvToolboxKey, ...options }),
        TypeError,
        /^Cannot migrate from kv-toolbox: /,
      );
    }
    await assertRejects(
      migrateKvToolbox(kv, { prefix: [] }, { kvToolboxKey, recipients: [] }),
      RangeError,
      /^Cannot migrate from kv-toolbox: recipients must list 1 to 16 keys$/,
    );
    assert.deepEqual(await snapshot(kv), stored, "nothing moved");
    const result = await migrateKvToolbox(kv, { prefix: [] }, {
      kvToolboxKey,
      recipients: [alice, bob],
      encryptPlain: true,
    });
    assert.ok(result.migrated > 0 && result.failed === 0, JSON.stringify(result));
    const blobs = await Array.fromAsync(list(kv, { prefix: [] }));
    assert.equal(blobs.length, result.migrated);
    for (const blob of blobs) {
      assert.ok(blob.value.encrypted, keyText(blob.key));
      assert.deepEqual(blob.value.kids, ["alice", "bob"], keyText(blob.key));
      const byAlice = (await get(kv, blob.key, { encryptionKey: alice })).value!;
      assertBytes((await get(kv, blob.key, { encryptionKey: bob })).value!, byAlice);
    }
  },
);
