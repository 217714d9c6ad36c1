/**
 * KeyWrapper recipients: keys that never enter the process, reached through
 * a real HTTP key service on 127.0.0.1. Round trips of every value kind,
 * mixed recipients, rewrap, the service going away and coming back,
 * tampering, header sizes, and what is refused.
 */

import assert from "node:assert/strict";
import { concat } from "./_bytes.ts";
import {
  type KeyService,
  KeyServiceError,
  SERVICE_WRAPPED_BYTES,
  serviceWrapper,
  startKeyService,
} from "./_testing/key_service.ts";
import { paddedAesWrapper } from "./_testing/kvc2_vectors.ts";
import { parseHeader, SUITE_AES_256_GCM } from "./_kvc1.ts";
import { SEALED_INLINE_MAX, WRAPPED_INLINE_MAX } from "./_limits.ts";
import {
  assertBytes,
  assertRejects,
  collect,
  internalEntries,
  kvTest,
  randomBytes,
} from "./_testing/util.ts";
import { get, getAsBlob, getAsResponse, getAsStream, getMeta, rewrap, set, stage } from "./blob.ts";
import { cryptoKv, DecryptionError } from "./crypto.ts";
import { generateKey, keyring, type KeyWrapper } from "./keys.ts";

/** Runs `fn` with a fresh store and a running key service, both closed afterwards. */
function wrapperTest(
  name: string,
  fn: (kv: Deno.Kv, service: KeyService) => Promise<void>,
): void {
  kvTest(name, async (kv) => {
    await using service = await startKeyService();
    await fn(kv, service);
  });
}

/** The magic of the record at `key`. */
async function magicOf(kv: Deno.Kv, key: Deno.KvKey): Promise<string> {
  const value = (await kv.get<Uint8Array>(key)).value!;
  return new TextDecoder().decode(value.subarray(0, 4));
}

/** Sizes: empty, inline, the wrapped inline limit ±1, several chunks. */
const SIZES = [0, 1, 1_000, WRAPPED_INLINE_MAX, WRAPPED_INLINE_MAX + 1, 200_000];

wrapperTest(
  "every value kind round-trips through a KeyWrapper backed by a key service",
  async (kv, service) => {
    const encryptionKey = serviceWrapper(service);
    for (const size of SIZES) {
      const data = randomBytes(size);
      const values = [
        ["bytes", data],
        ["stream", ReadableStream.from([data.subarray(0, 7), data.subarray(7)])],
        ["blob", new Blob([data], { type: "image/png" })],
        ["file", new File([data], "scan.png", { type: "image/png", lastModified: 42 })],
      ] as const;
      for (const [kind, value] of values) {
        const label = `${kind} of ${size}`;
        await set(kv, ["doc"], value, { encryptionKey });
        assert.equal(await magicOf(kv, ["doc"]), "KVC2", label);
        const header = parseHeader((await kv.get<Uint8Array>(["doc"])).value!);
        assert.equal(header.suite, SUITE_AES_256_GCM, `${label}: AES-256 for a wrapper`);
        assert.deepEqual(header.stanzas.map((s) => [s.form, s.kid, s.wrapped.length]), [
          ["wrapper", "service", SERVICE_WRAPPED_BYTES],
        ]);
        assertBytes((await get(kv, ["doc"], { encryptionKey })).value!, data, label);
        assertBytes(
          await collect((await getAsStream(kv, ["doc"], { encryptionKey }))!),
          data,
          label,
        );
        const blob = (await getAsBlob(kv, ["doc"], { encryptionKey }))!;
        assertBytes(new Uint8Array(await blob.arrayBuffer()), data, label);
        if (kind === "file") assert.ok(blob instanceof File && blob.name === "scan.png");
        const response = await getAsResponse(kv, ["doc"], { encryptionKey });
        assertBytes(new Uint8Array(await response.arrayBuffer()), data, label);
        const meta = (await getMeta(kv, ["doc"], { encryptionKey })).value!;
        assert.ok(meta.encrypted && meta.verified && meta.size === size, label);
      }
    }
    const staged = await stage(kv, ["staged"], randomBytes(100_000), { encryptionKey });
    const result = await staged.addTo(kv.atomic()).commit();
    await staged.complete(result);
    assert.equal((await get(kv, ["staged"], { encryptionKey })).value?.length, 100_000);
  },
);

wrapperTest("a wrapper inside a keyring and in an array reads and writes", async (kv, service) => {
  const wrapper = serviceWrapper(service, "kms-2");
  const local = await generateKey({ kid: "local-1" });
  const ring = await keyring(wrapper, local);
  await set(kv, ["a"], randomBytes(70_000), { encryptionKey: ring });
  const header = parseHeader((await kv.get<Uint8Array>(["a"])).value!);
  assert.deepEqual(header.stanzas.map((s) => s.kid), ["kms-2"], "the ring's current key writes");
  assert.equal((await get(kv, ["a"], { encryptionKey: ring })).value?.length, 70_000);
  assert.equal((await get(kv, ["a"], { encryptionKey: [local, wrapper] })).value?.length, 70_000);
});

wrapperTest("mixed recipients: a local key and a wrapper each read alone", async (kv, service) => {
  const local = await generateKey({ bits: 128, kid: "alice" });
  const wrapper = serviceWrapper(service, "bob");
  const data = randomBytes(150_000);
  await set(kv, ["shared"], data, { recipients: [wrapper, local] });
  const header = parseHeader((await kv.get<Uint8Array>(["shared"])).value!);
  assert.equal(header.suite, SUITE_AES_256_GCM, "the first recipient is a wrapper");
  assert.deepEqual(header.stanzas.map((s) => s.form), ["wrapper", "key"]);
  assertBytes((await get(kv, ["shared"], { encryptionKey: local })).value!, data, "local");
  const unwrapsBefore = service.calls.unwrap;
  assertBytes((await get(kv, ["shared"], { encryptionKey: wrapper })).value!, data, "wrapper");
  assert.equal(service.calls.unwrap, unwrapsBefore + 1);
  // Local keys are tried first: holding both costs no key service call.
  assertBytes((await get(kv, ["shared"], { encryptionKey: [wrapper, local] })).value!, data);
  assert.equal(service.calls.unwrap, unwrapsBefore + 1, "no call when a local key opens it");
});

wrapperTest("a wrapper is asked only about stanzas with its own kid", async (kv, service) => {
  const writer = serviceWrapper(service, "right");
  await set(kv, ["doc"], randomBytes(10), { encryptionKey: writer });
  let asked = 0;
  const other: KeyWrapper = {
    kid: "other",
    wrap: () => Promise.reject(new Error("unused")),
    unwrap: () => {
      asked++;
      return Promise.reject(new Error("must not be asked"));
    },
  };
  await assertRejects(get(kv, ["doc"], { encryptionKey: other }), DecryptionError);
  assert.equal(asked, 0);
});

wrapperTest(
  "rewrap adds a wrapper to a local-key blob, and removing it writes KVC1 again",
  async (kv, service) => {
    const local = await generateKey({ kid: "local" });
    const wrapper = serviceWrapper(service, "kms");
    const data = randomBytes(200_000);
    await set(kv, ["doc"], data, { encryptionKey: local });
    const kvc1 = (await kv.get<Uint8Array>(["doc"])).value!;
    assert.equal(await magicOf(kv, ["doc"]), "KVC1");
    await rewrap(kv, ["doc"], { encryptionKey: local, add: wrapper });
    assert.equal(await magicOf(kv, ["doc"]), "KVC2");
    assertBytes((await get(kv, ["doc"], { encryptionKey: wrapper })).value!, data, "wrapper");
    assertBytes((await get(kv, ["doc"], { encryptionKey: local })).value!, data, "local");
    await rewrap(kv, ["doc"], { encryptionKey: wrapper, remove: ["kms"] });
    assert.equal(await magicOf(kv, ["doc"]), "KVC1");
    const after = parseHeader((await kv.get<Uint8Array>(["doc"])).value!);
    assert.deepEqual(
      after.stanzas,
      parseHeader(kvc1).stanzas,
      "the local stanza kept byte for byte",
    );
    await assertRejects(get(kv, ["doc"], { encryptionKey: wrapper }), DecryptionError);
    assertBytes((await get(kv, ["doc"], { encryptionKey: local })).value!, data);
  },
);

wrapperTest(
  "the key service stopped: reads reject with its error as cause, writes keep the old value",
  async (kv, service) => {
    const encryptionKey = serviceWrapper(service);
    const old = randomBytes(200_000);
    await set(kv, ["doc"], old, { encryptionKey });
    await set(kv, ["small"], randomBytes(10), { encryptionKey });
    const before = await internalEntries(kv);
    const record = (await kv.get(["doc"])).versionstamp;
    await service.stop();
    for (
      const read of [
        () => get(kv, ["doc"], { encryptionKey }),
        () => getAsStream(kv, ["doc"], { encryptionKey }),
        () => getAsResponse(kv, ["doc"], { encryptionKey }),
        () => getMeta(kv, ["small"], { encryptionKey }),
      ]
    ) {
      const error = await assertRejects(read(), DecryptionError);
      assert.match(error.message, /^Cannot decrypt/);
      assert.ok(error.cause instanceof KeyServiceError, `cause: ${error.cause}`);
    }
    for (const size of [10, 200_000]) {
      await assert.rejects(set(kv, ["doc"], randomBytes(size), { encryptionKey }), KeyServiceError);
    }
    await assert.rejects(set(kv, ["new"], randomBytes(10), { encryptionKey }), KeyServiceError);
    assert.deepEqual(await internalEntries(kv), before, "nothing stored");
    assert.equal((await kv.get(["doc"])).versionstamp, record);
    assert.equal((await kv.get(["new"])).versionstamp, null);
    await service.start();
    assertBytes((await get(kv, ["doc"], { encryptionKey })).value!, old, "readable again");
    await set(kv, ["doc"], randomBytes(5), { encryptionKey });
    assert.equal((await get(kv, ["doc"], { encryptionKey })).value?.length, 5);
  },
);

/** The offset of the first wrapper stanza's wrapped bytes in a KVC2 record with one stanza. */
function wrappedOffset(kid: string): number {
  // magic 4, suite 1, id 16, commitment 32, chunkSize 4, size 8, chunks 4, expiresAt 8, n 1,
  // then form 1, kidLen 1, kid, length 2.
  return 78 + 1 + 1 + new TextEncoder().encode(kid).length + 2;
}

wrapperTest(
  "a flipped byte anywhere in a wrapper stanza is a DecryptionError",
  async (kv, service) => {
    const encryptionKey = serviceWrapper(service, "kms");
    await set(kv, ["doc"], randomBytes(200_000), { encryptionKey });
    const record = (await kv.get<Uint8Array>(["doc"])).value!;
    const start = 78;
    const end = wrappedOffset("kms") + SERVICE_WRAPPED_BYTES;
    for (const offset of [start, start + 1, start + 2, start + 4, start + 5, end - 100, end - 1]) {
      const tampered = record.slice();
      tampered[offset]! ^= 0x01;
      await kv.set(["doc"], tampered);
      await assertRejects(
        get(kv, ["doc"], { encryptionKey }),
        DecryptionError,
        undefined,
        `byte ${offset}`,
      );
    }
    await kv.set(["doc"], record);
    assert.equal((await get(kv, ["doc"], { encryptionKey })).value?.length, 200_000);
  },
);

wrapperTest(
  "a wrapped secret copied from another blob does not open (the context binds the id)",
  async (kv, service) => {
    const encryptionKey = serviceWrapper(service, "kms");
    await set(kv, ["a"], randomBytes(200_000), { encryptionKey });
    await set(kv, ["b"], randomBytes(200_000), { encryptionKey });
    const a = (await kv.get<Uint8Array>(["a"])).value!;
    const b = (await kv.get<Uint8Array>(["b"])).value!;
    const offset = wrappedOffset("kms");
    const spliced = concat([
      a.subarray(0, offset),
      b.subarray(offset, offset + SERVICE_WRAPPED_BYTES),
      a.subarray(offset + SERVICE_WRAPPED_BYTES),
    ]);
    await kv.set(["a"], spliced);
    const error = await assertRejects(get(kv, ["a"], { encryptionKey }), DecryptionError);
    // The service itself refused: the wrapped secret is bound to blob b's id.
    assert.ok(error.cause instanceof KeyServiceError);
  },
);

wrapperTest("a record moved to another key is a DecryptionError", async (kv, service) => {
  const encryptionKey = serviceWrapper(service);
  await set(kv, ["from"], randomBytes(1_000), { encryptionKey });
  await kv.set(["to"], (await kv.get<Uint8Array>(["from"])).value!);
  await assertRejects(get(kv, ["to"], { encryptionKey }), DecryptionError);
});

/** A wrapper that seals with a fresh local key and random IVs, outputs padded to `outputBytes`. */
async function paddedWrapper(kid: string, outputBytes: number): Promise<KeyWrapper> {
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
  return paddedAesWrapper(kid, key, outputBytes, () => crypto.getRandomValues(new Uint8Array(12)));
}

kvTest(
  "16 wrapper recipients with 1,024-byte outputs fit one record, inline or not",
  async (kv) => {
    const wrappers = await Promise.all(
      Array.from({ length: 16 }, (_, i) => paddedWrapper(`wrapper-${i}-${"x".repeat(50)}`, 1_024)),
    );
    for (const size of [WRAPPED_INLINE_MAX, WRAPPED_INLINE_MAX + 1, 100_000]) {
      const data = randomBytes(size);
      await set(kv, ["big"], data, {
        recipients: wrappers,
        name: "n".repeat(1_900),
        type: "application/pdf",
      });
      for (const wrapper of [wrappers[0]!, wrappers[15]!]) {
        assertBytes((await get(kv, ["big"], { encryptionKey: wrapper })).value!, data, `${size}`);
      }
    }
  },
);

kvTest(
  "rewrap that would push an inline record past one KV value is a RangeError and changes nothing",
  async (kv) => {
    const local = await generateKey({ kid: "l" });
    await set(kv, ["inline"], randomBytes(SEALED_INLINE_MAX), { encryptionKey: local });
    const before = await kv.get(["inline"]);
    const big = await Promise.all([1, 2, 3, 4].map((i) => paddedWrapper(`w${i}`, 1_024)));
    await assertRejects(
      rewrap(kv, ["inline"], { encryptionKey: local, add: big }),
      RangeError,
      /^Cannot rewrap \["inline"\]: .*set\(\)/,
    );
    const after = await kv.get(["inline"]);
    assert.equal(after.versionstamp, before.versionstamp);
    // A small stanza still fits: most rewraps of inline blobs work.
    await rewrap(kv, ["inline"], { encryptionKey: local, add: await paddedWrapper("small", 60) });
    assert.equal(
      (await get(kv, ["inline"], { encryptionKey: local })).value?.length,
      SEALED_INLINE_MAX,
    );
  },
);

kvTest("wrapped outputs outside 1–1,024 bytes are a RangeError and store nothing", async (kv) => {
  for (const output of [new Uint8Array(0), new Uint8Array(1_025), "text"]) {
    const bad: KeyWrapper = {
      kid: "bad",
      wrap: () => Promise.resolve(output as Uint8Array),
      unwrap: () => Promise.reject(new Error("unused")),
    };
    for (const size of [10, 200_000]) {
      await assertRejects(set(kv, ["x"], randomBytes(size), { encryptionKey: bad }), RangeError);
    }
  }
  assert.deepEqual((await internalEntries(kv)).keys.size, 0);
  assert.equal((await kv.get(["x"])).versionstamp, null);
});

kvTest("a wrapper that refuses stops the write before any atomic commits", async (kv) => {
  let commits = 0;
  const counted = new Proxy(kv, {
    get(target, name) {
      if (name !== "atomic") {
        const value = Reflect.get(target, name, target);
        return typeof value === "function" ? value.bind(target) : value;
      }
      return () => {
        const op = target.atomic();
        const commit = op.commit.bind(op);
        op.commit = () => {
          commits++;
          return commit();
        };
        return op;
      };
    },
  });
  const refusing: KeyWrapper = {
    kid: "service",
    // Slow to answer, as a key service is: chunks would go out meanwhile if it were not awaited.
    wrap: () => new Promise((_, reject) => setTimeout(() => reject(new Error("refused")), 30)),
    unwrap: () => Promise.reject(new Error("unused")),
  };
  // The wrapper's own error reaches the caller, as a key service's does.
  await assert.rejects(
    set(counted, ["x"], randomBytes(2_000_000), { encryptionKey: refusing }),
    /refused/,
  );
  assert.equal(commits, 0, "no chunk atomic went out before the key service answered");
  assert.deepEqual((await internalEntries(kv)).keys.size, 0);
});

kvTest("a wrapper that returns a secret of the wrong length is a DecryptionError", async (kv) => {
  const good = await paddedWrapper("w", 200);
  await set(kv, ["x"], randomBytes(100), { encryptionKey: good });
  for (const secret of [new Uint8Array(31), new Uint8Array(33), "nope"]) {
    const liar: KeyWrapper = { ...good, unwrap: () => Promise.resolve(secret as Uint8Array) };
    await assertRejects(get(kv, ["x"], { encryptionKey: liar }), DecryptionError);
  }
  // Thirty-two wrong bytes pass the length check but not the key commitment.
  const wrong: KeyWrapper = { ...good, unwrap: () => Promise.resolve(new Uint8Array(32)) };
  await assertRejects(get(kv, ["x"], { encryptionKey: wrong }), DecryptionError, /key commitment/);
});

kvTest("a KeyWrapper needs a kid of 1–64 bytes", async (kv) => {
  const wrapper = await paddedWrapper("", 100);
  await assertRejects(keyring(wrapper), TypeError);
  await assertRejects(set(kv, ["x"], new Uint8Array(1), { encryptionKey: wrapper }), TypeError);
  const long = await paddedWrapper("k".repeat(65), 100);
  await assertRejects(set(kv, ["x"], new Uint8Array(1), { encryptionKey: long }), RangeError);
});

kvTest("cryptoKv refuses a KeyWrapper with a TypeError that says what to do", async (kv) => {
  const wrapper = await paddedWrapper("w", 100);
  for (const encryptionKey of [wrapper, await keyring(await generateKey(), wrapper)]) {
    const values = cryptoKv(kv, encryptionKey);
    await assertRejects(values.set(["v"], 1), TypeError, /^Cannot use a KeyWrapper for cryptoKv/);
    await assertRejects(values.get(["v"]), TypeError);
  }
});

wrapperTest(
  "the context binds the kid: a stanza renamed to another wrapper of the same service does not open",
  async (kv, service) => {
    const alice = serviceWrapper(service, "alice");
    const carol = serviceWrapper(service, "carol"); // same service key, same kid length
    await set(kv, ["doc"], randomBytes(1_000), { encryptionKey: alice });
    const record = (await kv.get<Uint8Array>(["doc"])).value!.slice();
    const kidAt = 78 + 1 + 1; // form byte, kidLen, then the kid
    assert.equal(new TextDecoder().decode(record.subarray(kidAt, kidAt + 5)), "alice");
    record.set(new TextEncoder().encode("carol"), kidAt);
    await kv.set(["doc"], record);
    const error = await assertRejects(get(kv, ["doc"], { encryptionKey: carol }), DecryptionError);
    // The service refused: the wrapped secret was bound to kid "alice".
    assert.ok(error.cause instanceof KeyServiceError, `cause: ${error.cause}`);
  },
);

wrapperTest(
  "every read through a wrapper asks the key service (its secrets are not cached)",
  async (kv, service) => {
    const encryptionKey = serviceWrapper(service);
    await set(kv, ["doc"], randomBytes(100_000), { encryptionKey });
    const before = service.calls.unwrap;
    for (let i = 0; i < 3; i++) await get(kv, ["doc"], { encryptionKey });
    assert.equal(service.calls.unwrap, before + 3, "the service can refuse (and log) each read");
    await service.stop();
    await assertRejects(get(kv, ["doc"], { encryptionKey }), DecryptionError);
    await service.start();
  },
);

kvTest(
  "a wrapper whose kid changed after joining a keyring is refused at write time, the old value kept",
  async (kv) => {
    const wrapper = await paddedWrapper("good", 100);
    const ring = await keyring(wrapper);
    await set(kv, ["doc"], randomBytes(10), { encryptionKey: ring });
    const before = await kv.get(["doc"]);
    (wrapper as { kid: string }).kid = "k".repeat(300);
    await assertRejects(set(kv, ["doc"], randomBytes(10), { encryptionKey: ring }), RangeError);
    assert.equal((await kv.get(["doc"])).versionstamp, before.versionstamp);
  },
);
