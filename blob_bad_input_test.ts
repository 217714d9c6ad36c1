/**
 * Plain blobs: what `set` and the reads refuse (keys, values, streams,
 * signals, expireIn, metadata size, versionstamps, key size, argument
 * types), and that a refused write changes nothing.
 */

import assert from "node:assert/strict";
import {
  type BlobValue,
  get,
  getAsBlob,
  getAsStream,
  getMeta,
  remove,
  set,
  stage,
  vacuum,
} from "./blob.ts";
import { CHUNKS_PER_ATOMIC, META_JSON_MAX } from "./_limits.ts";
import { FILE_MODIFIED, keepBlob } from "./_testing/blob_values.ts";
import { CHUNK, chunkKeyOf, INTERNAL } from "./_testing/plain_record.ts";
import { assertRejects, kvTest, randomBytes, snapshot, streamOf } from "./_testing/util.ts";

const BAD_KEYS: [string, unknown][] = [
  ["a string", "key"],
  ["an empty array", []],
  ["a symbol part", [Symbol("part")]],
  ["a NaN part", [Number.NaN]],
  ["an object part", [{}]],
  ["an undefined part", [undefined]],
  ["null", null],
  ["the reserved prefix", [INTERNAL, "x"]],
  ["the reserved prefix alone", [INTERNAL]],
];

const CALLS: [string, (kv: Deno.Kv, key: Deno.KvKey) => Promise<unknown>][] = [
  ["set()", (kv, key) => set(kv, key, randomBytes(10))],
  ["set() of a big value", (kv, key) => set(kv, key, randomBytes(3 * CHUNK))],
  ["stage()", (kv, key) => stage(kv, key, randomBytes(3 * CHUNK))],
  ["get()", (kv, key) => get(kv, key)],
  ["get({ stream })", (kv, key) => get(kv, key, { stream: true })],
  ["get({ blob })", (kv, key) => get(kv, key, { blob: true })],
  ["getAsStream()", (kv, key) => getAsStream(kv, key)],
  ["getAsBlob()", (kv, key) => getAsBlob(kv, key)],
  ["getMeta()", (kv, key) => getMeta(kv, key)],
  ["remove()", (kv, key) => remove(kv, key)],
];

for (const [what, key] of BAD_KEYS) {
  kvTest(`set(), get() and friends reject ${what} as the key with a TypeError`, async (kv) => {
    const kept = await keepBlob(kv, ["keep"], 3 * CHUNK);
    for (const [name, call] of CALLS) {
      const error = await assertRejects(
        () => call(kv, key as Deno.KvKey),
        TypeError,
        undefined,
        name,
      );
      assert.ok(error.message.length > 10, `${name}: a clear message`);
    }
    await kept.assertUntouched();
  });
}

kvTest("set() rejects a key inside kvcrypt's own chunks and leaves the chunk alone", async (kv) => {
  await set(kv, ["victim"], randomBytes(2 * CHUNK));
  const chunk = await chunkKeyOf(kv, ["victim"], 1);
  const before = await snapshot(kv);
  await assertRejects(() => set(kv, chunk, randomBytes(10)), TypeError, /__kvcrypt__/);
  await assertRejects(() => remove(kv, chunk), TypeError);
  assert.deepEqual(await snapshot(kv), before);
});

const BAD_VALUES: [string, unknown][] = [
  ["a string", "hello"],
  ["a number", 42],
  ["a plain object", { byteLength: 3 }],
  ["null", null],
  ["undefined", undefined],
  ["an array of numbers", [1, 2, 3]],
];

for (const [what, value] of BAD_VALUES) {
  kvTest(
    `set() rejects ${what} as the value with a TypeError and keeps the old value`,
    async (kv) => {
      const kept = await keepBlob(kv, ["key"], 3 * CHUNK);
      const error = await assertRejects(() => set(kv, ["key"], value as BlobValue), TypeError);
      assert.match(error.message, /\["key"\]/, "names the key");
      await assertRejects(() => stage(kv, ["key"], value as BlobValue), TypeError);
      await kept.assertUntouched();
    },
  );
}

/** A stream of `full` random full chunks (plus an optional short piece), then `end()`. */
function failingStream(
  full: number,
  extra: number,
  end: (controller: ReadableStreamDefaultController<Uint8Array>) => void,
): { stream: ReadableStream<Uint8Array>; cancelled: () => boolean } {
  let sent = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent < full) controller.enqueue(randomBytes(CHUNK));
      else if (sent === full && extra > 0) controller.enqueue(randomBytes(extra));
      else end(controller);
      sent++;
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, cancelled: () => cancelled };
}

const FAILURE_POINTS: [number, number][] = [
  [0, 0], // before the first byte
  [0, 100], // inside what would be an inline blob
  [CHUNKS_PER_ATOMIC, 0], // exactly one chunk atomic
  [CHUNKS_PER_ATOMIC + 1, 0], // one chunk into the second atomic
  [20, 5], // 1.25 MiB, several atomics
  [40, 0], // 2.5 MiB
];

for (const [full, extra] of FAILURE_POINTS) {
  kvTest(
    `set() rejects with the stream's own error after ${
      full * CHUNK + extra
    } bytes and keeps the old value`,
    async (kv) => {
      const kept = await keepBlob(kv, ["key"], 5 * CHUNK + 3);
      const boom = new Error("disk on fire");
      const { stream } = failingStream(full, extra, (controller) => controller.error(boom));
      await assert.rejects(() => set(kv, ["key"], stream), (error) => error === boom);
      await kept.assertUntouched("no orphan entries, old record untouched");
    },
  );
}

kvTest("set() rejects a stream that yields something other than a Uint8Array", async (kv) => {
  const kept = await keepBlob(kv, ["key"], 100);
  for (const full of [0, 15]) {
    const { stream } = failingStream(
      full,
      0,
      (controller) => controller.enqueue("text" as unknown as Uint8Array),
    );
    await assertRejects(() => set(kv, ["key"], stream), TypeError);
    await kept.assertUntouched();
  }
});

kvTest(
  "set() with an already-aborted signal rejects with its reason and writes nothing",
  async (kv) => {
    const kept = await keepBlob(kv, ["key"], 2 * CHUNK);
    const reason = new Error("user gave up");
    for (const value of [randomBytes(10), randomBytes(3 * CHUNK), streamOf([randomBytes(CHUNK)])]) {
      await assert.rejects(
        () => set(kv, ["key"], value, { signal: AbortSignal.abort(reason) }),
        (error) => error === reason,
      );
    }
    const signal = AbortSignal.abort();
    await assert.rejects(
      () => set(kv, ["key"], randomBytes(10), { signal }),
      (error) => error === signal.reason,
    );
    await assert.rejects(
      () => stage(kv, ["key"], randomBytes(10), { signal }),
      (error) => error === signal.reason,
    );
    await kept.assertUntouched();
  },
);

kvTest(
  "set() aborted midway through a big stream rejects with the reason and leaves no orphans",
  async (kv) => {
    const kept = await keepBlob(kv, ["key"], 3 * CHUNK);
    const controller = new AbortController();
    const reason = new Error("user gave up midway");
    let pulled = 0;
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(stream) {
        pulled++;
        if (pulled === 30) controller.abort(reason); // after ~1.9 MiB
        if (pulled > 200) stream.close();
        else stream.enqueue(randomBytes(CHUNK));
      },
      cancel() {
        cancelled = true;
      },
    });
    await assert.rejects(
      () => set(kv, ["key"], stream, { signal: controller.signal }),
      (error) => error === reason,
    );
    assert.ok(pulled < 60, `stopped reading soon after the abort (pulled ${pulled})`);
    assert.ok(cancelled, "the source stream is cancelled");
    await kept.assertUntouched();
  },
);

kvTest(
  "set() of a byte array aborted after its first chunk atomic rejects with the reason and leaves no orphans",
  async (kv) => {
    const kept = await keepBlob(kv, ["key"], 3 * CHUNK);
    const controller = new AbortController();
    const reason = new Error("user gave up midway");
    const reported: number[] = [];
    const onProgress = (bytes: number) => {
      reported.push(bytes);
      controller.abort(reason); // the first atomic is committed: stop before the next one
    };
    await assert.rejects(
      () => set(kv, ["key"], randomBytes(40 * CHUNK), { signal: controller.signal, onProgress }),
      (error) => error === reason,
    );
    assert.ok(reported.length >= 1 && reported[0]! < 40 * CHUNK, `progress ${reported}`);
    await kept.assertUntouched();
  },
);

kvTest("set() rejects expireIn 0, negative, NaN or infinite with a RangeError", async (kv) => {
  const kept = await keepBlob(kv, ["key"], 10);
  for (const expireIn of [0, -1, -0.5, Number.NaN, Infinity, -Infinity]) {
    for (const value of [randomBytes(10), randomBytes(2 * CHUNK)]) {
      const error = await assertRejects(() => set(kv, ["key"], value, { expireIn }), RangeError);
      assert.match(error.message, /expireIn/);
    }
  }
  await kept.assertUntouched();
});

/** A File name whose metadata JSON `{"kind":"file","name":…,"lastModified":…}` takes `bytes` bytes. */
function nameForMeta(bytes: number, char = "n"): string {
  const base = new TextEncoder().encode(
    JSON.stringify({ kind: "file", name: "", lastModified: FILE_MODIFIED }),
  ).length;
  const charBytes = new TextEncoder().encode(char).length;
  assert.equal((bytes - base) % charBytes, 0);
  return char.repeat((bytes - base) / charBytes);
}

kvTest("set() rejects a File whose metadata exceeds 2,048 bytes with a RangeError", async (kv) => {
  const kept = await keepBlob(kv, ["key"], 3 * CHUNK);
  const tooLong = [
    nameForMeta(META_JSON_MAX + 1),
    nameForMeta(META_JSON_MAX + 2, "é"), // 2-byte UTF-8: fewer than 2,048 characters
    nameForMeta(10_000),
  ];
  for (const name of tooLong) {
    for (const data of [randomBytes(10), randomBytes(3 * CHUNK)]) {
      const file = new File([data], name, { lastModified: FILE_MODIFIED });
      await assertRejects(() => set(kv, ["key"], file), RangeError);
      await assertRejects(() => set(kv, ["new"], file), RangeError);
      await assertRejects(() => stage(kv, ["new"], file), RangeError);
    }
  }
  await assertRejects(
    () => set(kv, ["new"], new Blob(["x"], { type: `a/${"b".repeat(3000)}` })),
    RangeError,
  );
  await kept.assertUntouched("nothing written");

  // The limit itself is allowed, counted in UTF-8 bytes.
  for (const name of [nameForMeta(META_JSON_MAX), nameForMeta(META_JSON_MAX, "é")]) {
    await set(kv, ["ok"], new File(["x"], name, { lastModified: FILE_MODIFIED }));
    assert.equal((await getAsBlob(kv, ["ok"]) as File).name, name);
  }
});

kvTest("set() names the key in every error message", async (kv) => {
  const name = nameForMeta(META_JSON_MAX + 1);
  const tooLong = await assertRejects(
    () => set(kv, ["docs", "report"], new File(["x"], name, { lastModified: FILE_MODIFIED })),
    RangeError,
  );
  assert.match(tooLong.message, /\["docs", "report"\]/);
  const notBytes = await assertRejects(
    () => set(kv, ["docs", "report"], streamOf(["text" as unknown as Uint8Array])),
    TypeError,
  );
  assert.match(notBytes.message, /\["docs", "report"\]/);
  const expiry = await assertRejects(
    () => set(kv, ["docs", "report"], randomBytes(1), { expireIn: 0 }),
    RangeError,
  );
  assert.match(expiry.message, /\["docs", "report"\]/);
});

kvTest("set() rejects a versionstamp that is not a string with a TypeError", async (kv) => {
  const kept = await keepBlob(kv, ["key"], 3 * CHUNK);
  for (const versionstamp of [42, {}, false]) {
    await assertRejects(
      () => set(kv, ["key"], randomBytes(3 * CHUNK), { versionstamp: versionstamp as string }),
      TypeError,
      /versionstamp/,
    );
  }
  await kept.assertUntouched();
});

kvTest("set() with a malformed versionstamp string fails and keeps the old value", async (kv) => {
  const kept = await keepBlob(kv, ["key"], 3 * CHUNK);
  for (const value of [randomBytes(10), randomBytes(3 * CHUNK)]) {
    await assert.rejects(set(kv, ["key"], value, { versionstamp: "not a versionstamp" }));
  }
  await assert.rejects(remove(kv, ["key"], { versionstamp: "not a versionstamp" }));
  await kept.assertUntouched("no orphans, old record untouched");
});

kvTest(
  "set() and remove() reject a malformed versionstamp string with a clear TypeError",
  async (kv) => {
    await set(kv, ["key"], randomBytes(3 * CHUNK));
    for (const versionstamp of ["not a versionstamp", "", "0".repeat(19), "G".repeat(20)]) {
      await assertRejects(
        () => set(kv, ["key"], randomBytes(10), { versionstamp }),
        TypeError,
        /versionstamp/,
        "set()",
      );
      await assertRejects(
        () => remove(kv, ["key"], { versionstamp }),
        TypeError,
        /versionstamp/,
        "remove()",
      );
    }
  },
);

kvTest(
  "set() rejects when the expireIn deadline passes during the write, leaving nothing",
  async (kv) => {
    const kept = await keepBlob(kv, ["key"], 100);
    let sent = 0;
    const slow = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 15));
        if (sent++ < 3) controller.enqueue(randomBytes(CHUNK));
        else controller.close();
      },
    });
    await assertRejects(() => set(kv, ["key"], slow, { expireIn: 10 }), RangeError, /expireIn/);
    await kept.assertUntouched();
  },
);

kvTest("set() rejects a key Deno KV cannot store before writing anything", async (kv) => {
  const fits = ["k", "x".repeat(2043)]; // 2,048 bytes in Deno KV's encoding
  const tooLong = ["k", "x".repeat(2044)];
  await set(kv, fits, randomBytes(3 * CHUNK));
  const before = await snapshot(kv);
  const error = await assertRejects(() => set(kv, tooLong, randomBytes(3 * CHUNK)), RangeError);
  assert.match(error.message, /^Cannot store the blob: the key takes 2049 bytes/);
  await assertRejects(() => get(kv, tooLong), RangeError);
  await assertRejects(() => remove(kv, tooLong), RangeError);
  assert.deepEqual(await snapshot(kv), before, "nothing written");
});

kvTest("set() cancels the caller's stream whatever stops it before the upload", async (kv) => {
  const failures: [string, (stream: ReadableStream<Uint8Array>) => Promise<unknown>][] = [
    ["an aborted signal", (s) => set(kv, ["k"], s, { signal: AbortSignal.abort(new Error("no")) })],
    ["a bad expireIn", (s) => set(kv, ["k"], s, { expireIn: -1 })],
    ["a bad encryptionKey", (s) => set(kv, ["k"], s, { encryptionKey: "not json" })],
    ["a bad versionstamp", (s) => set(kv, ["k"], s, { versionstamp: "nope" })],
  ];
  for (const [what, run] of failures) {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull: (controller) => controller.enqueue(randomBytes(CHUNK)),
      cancel: () => {
        cancelled = true;
      },
    });
    await assert.rejects(run(stream));
    assert.ok(cancelled, `${what}: the stream is cancelled`);
  }
  assert.equal((await get(kv, ["k"])).value, null);
});

kvTest(
  "vacuum() and getAsStream() reject arguments of the wrong type with TypeError",
  async (kv) => {
    await set(kv, ["x"], randomBytes(10));
    await assertRejects(() => vacuum(kv, { olderThan: "5" as unknown as number }), TypeError);
    const range = { start: "1" as unknown as number };
    await assertRejects(() => getAsStream(kv, ["x"], { range }), TypeError);
  },
);
