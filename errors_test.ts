/**
 * Error kinds: a state of the store or the environment is one of kvcrypt's
 * error classes (NotFoundError, AlreadyExistsError, DecryptionError), text
 * that does not parse is a SyntaxError, and a value of the wrong type stays
 * a TypeError. Each refusal leaves the store as it was.
 */

import assert from "node:assert/strict";
import * as mod from "./mod.ts";
import * as blobModule from "./blob.ts";
import * as keysModule from "./keys.ts";
import { AlreadyExistsError, get, NotFoundError, rewrap, set } from "./blob.ts";
import { DecryptionError } from "./crypto.ts";
import { generateKey, importKey, keyringFromEnv } from "./keys.ts";
import { assertRejects, kvTest, randomBytes, snapshot } from "./_testing/util.ts";

Deno.test("the new error classes are Errors with their own name, exported once", () => {
  for (const ErrorClass of [NotFoundError, AlreadyExistsError]) {
    const error = new ErrorClass("Cannot x", { cause: 1 });
    assert.ok(error instanceof Error);
    assert.equal(error.name, ErrorClass.name);
    assert.equal(error.cause, 1);
    assert.ok(!(error instanceof TypeError), "not a TypeError any more");
  }
  assert.equal(mod.NotFoundError, NotFoundError);
  assert.equal(mod.AlreadyExistsError, AlreadyExistsError);
  assert.equal(blobModule.NotFoundError, keysModule.NotFoundError, "one class in both modules");
});

kvTest("rewrap() of a key holding nothing is a NotFoundError and stores nothing", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  const before = await snapshot(kv);
  await assertRejects(
    rewrap(kv, ["missing"], { encryptionKey: alice, add: await generateKey() }),
    NotFoundError,
    /^Cannot rewrap \["missing"\]: no blob is stored at the key$/,
  );
  assert.deepEqual(await snapshot(kv), before);
});

kvTest("rewrap() of a plain blob is a DecryptionError, as a read with a key", async (kv) => {
  const alice = await generateKey({ kid: "alice" });
  await set(kv, ["plain"], randomBytes(100_000));
  const before = await snapshot(kv);
  await assertRejects(
    rewrap(kv, ["plain"], { encryptionKey: alice, add: await generateKey() }),
    DecryptionError,
    /^Cannot rewrap \["plain"\]: the blob is not encrypted$/,
  );
  await assertRejects(
    get(kv, ["plain"], { encryptionKey: alice }),
    DecryptionError,
    /not encrypted/,
  );
  assert.deepEqual(await snapshot(kv), before);
});

kvTest(
  "rewrap() adding a kid that has a stanza is an AlreadyExistsError; removing it too replaces it",
  async (kv) => {
    const alice = await generateKey({ kid: "alice" });
    await set(kv, ["doc"], randomBytes(10), { encryptionKey: alice });
    const before = await snapshot(kv);
    const again = await generateKey({ kid: "alice" });
    await assertRejects(
      rewrap(kv, ["doc"], { encryptionKey: alice, add: again }),
      AlreadyExistsError,
      /^Cannot rewrap \["doc"\]: kid "alice" already has a stanza; remove it in the same call/,
    );
    assert.deepEqual(await snapshot(kv), before);
    assert.ok(
      (await rewrap(kv, ["doc"], { encryptionKey: alice, add: again, remove: ["alice"] })).ok,
    );
    assert.equal((await get(kv, ["doc"], { encryptionKey: again })).value?.length, 10);
  },
);

kvTest("rewrap() without encryptionKey stays a TypeError: a missing argument", async (kv) => {
  await set(kv, ["doc"], randomBytes(10), { encryptionKey: await generateKey() });
  await assertRejects(
    rewrap(kv, ["doc"], {} as Parameters<typeof rewrap>[2]),
    TypeError,
    /^Cannot rewrap \["doc"\]: encryptionKey is required$/,
  );
});

Deno.test("key text that does not parse is a SyntaxError; JSON that is not a JWK stays a TypeError", async () => {
  const jwk = await generateKey();
  for (const text of ["", "{", "not json", "00112233445566778899aabbccddeeff", `${jwk.k}`]) {
    await assertRejects(importKey(text), SyntaxError, /^Cannot import key: .*not JSON/);
  }
  for (const text of ["[]", "42", '{"kty":"RSA"}', JSON.stringify({ ...jwk, k: 1 })]) {
    await assertRejects(importKey(text), TypeError, /^Cannot import key: /);
  }
});

kvTest(
  "a key string that does not parse fails set and get with SyntaxError, storing nothing",
  async (kv) => {
    const before = await snapshot(kv);
    for (const encryptionKey of ["{", "00112233445566778899aabbccddeeff"]) {
      await assertRejects(
        set(kv, ["doc"], randomBytes(100_000), { encryptionKey }),
        SyntaxError,
        /^Cannot import key: /,
      );
      await assertRejects(get(kv, ["doc"], { encryptionKey }), SyntaxError, /not JSON/);
    }
    assert.deepEqual(await snapshot(kv), before);
  },
);

Deno.test("keyringFromEnv(): NotFoundError when unset or empty, SyntaxError when not JSON", async () => {
  const name = "KVCRYPT_TEST_ERRORS_KEY";
  Deno.env.delete(name);
  try {
    await assertRejects(
      keyringFromEnv(name),
      NotFoundError,
      /KVCRYPT_TEST_ERRORS_KEY is not set$/,
    );
    Deno.env.set(name, "");
    await assertRejects(
      keyringFromEnv(name),
      NotFoundError,
      /KVCRYPT_TEST_ERRORS_KEY is empty$/,
    );
    Deno.env.set(name, "{not json");
    await assertRejects(
      keyringFromEnv(name),
      SyntaxError,
      /^Cannot import key from environment variable KVCRYPT_TEST_ERRORS_KEY: the text is not JSON/,
    );
    Deno.env.set(name, '{"kty":"oct"}');
    await assertRejects(keyringFromEnv(name), TypeError, /"k" is missing/);
  } finally {
    Deno.env.delete(name);
  }
});
