/**
 * kvcrypt on Node with `@deno/kv`: run by `deno task node:check` (node/run.ts)
 * and by node_interop_test.ts, never by hand.
 *
 *     node node/check.mjs <kvcrypt bundle> <@deno/kv ESM entry> <directory>
 *
 * The directory holds `deno.sqlite` and `deno.json` (what Deno wrote and their
 * SHA-256); the shared key comes in the environment (`KEY_VARIABLE`). Each
 * check prints `ok - …` or `not ok - …: reason`; the last line is
 * `N passed, N failed` and the exit code is 1 when a check failed. What this
 * script writes (`node.sqlite`, `node.json`) the Deno side reads back.
 *
 * @module
 */

import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import {
  DENO_KEYS,
  describeRandomValue,
  KEY_VARIABLE,
  NODE_KEYS,
  randomBytes,
  sha256Hex,
  valueOf,
} from "./_interop.mjs";

/** Size of the large blob: 5 MiB spans many chunks and several read batches. */
const LARGE = 5 * 1024 * 1024;

const [bundlePath, kvEntryPath, dir] = process.argv.slice(2);
if (bundlePath === undefined || kvEntryPath === undefined || dir === undefined) {
  console.error("usage: node node/check.mjs <kvcrypt bundle> <@deno/kv ESM entry> <directory>");
  process.exit(2);
}
const kvcrypt = await import(pathToFileURL(bundlePath).href);
const { openKv } = await import(pathToFileURL(kvEntryPath).href);
const fromDeno = JSON.parse(await readFile(join(dir, "deno.json"), "utf8"));

let passed = 0;
let failed = 0;

/** Runs one named check and prints its outcome. */
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (error) {
    failed++;
    console.log(`not ok - ${name}: ${error?.stack ?? error}`);
  }
}

/** Reads a whole stream into one Uint8Array. */
async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return new Uint8Array(await new Blob(parts).arrayBuffer());
}

/** Asserts a File read back has the bytes and metadata described. */
async function assertFile(file, expected) {
  assert.ok(file instanceof File, "a File comes back");
  assert.equal(file.name, expected.name);
  assert.equal(file.type, expected.type);
  assert.equal(file.lastModified, expected.lastModified);
  assert.equal(await sha256Hex(new Uint8Array(await file.arrayBuffer())), expected.sha256);
}

await check("runs without the Deno global", () => {
  assert.equal(typeof globalThis.Deno, "undefined");
});

let key;
await check("keyringFromEnv() reads process.env", async () => {
  key = await kvcrypt.keyringFromEnv(KEY_VARIABLE);
  assert.equal(key.current.kid, fromDeno.kid);
});
key ??= JSON.parse(process.env[KEY_VARIABLE] ?? "null");
const wrongKey = await kvcrypt.generateKey();

const denoKv = await openKv(join(dir, "deno.sqlite"));
await check("reads the encrypted blob Deno wrote to a SQLite file", async () => {
  const { value } = await kvcrypt.get(denoKv, DENO_KEYS.blob, { encryptionKey: key });
  assert.ok(value instanceof Uint8Array, "bytes come back");
  assert.equal(value.length, fromDeno.blob.size);
  assert.equal(await sha256Hex(value), fromDeno.blob.sha256);
  const { value: meta } = await kvcrypt.getMeta(denoKv, DENO_KEYS.blob, { encryptionKey: key });
  assert.equal(meta.verified, true);
  assert.equal(meta.id, fromDeno.blob.id, "the version id Deno's getMeta saw");
});
await check("reads the plain blob Deno wrote", async () => {
  const { value } = await kvcrypt.get(denoKv, DENO_KEYS.plain);
  assert.equal(await sha256Hex(value), fromDeno.plain.sha256);
});
await check("reads the encrypted File Deno wrote", async () => {
  await assertFile(
    await kvcrypt.getAsBlob(denoKv, DENO_KEYS.file, { encryptionKey: key }),
    fromDeno.file,
  );
});
await check("reads the cryptoKv value Deno wrote", async () => {
  const entry = await kvcrypt.cryptoKv(denoKv, key).get(DENO_KEYS.value);
  assert.deepEqual(entry.value, valueOf(fromDeno.value));
});
denoKv.close();

const kv = await openKv(join(dir, "node.sqlite"));
const large = randomBytes(LARGE + 12_345);
const fileBytes = randomBytes(200_000);
const file = new File([fileBytes], "report ü.pdf", {
  type: "application/pdf",
  lastModified: 1_700_000_000_123,
});
const description = describeRandomValue();
const toDeno = {
  blob: { size: large.length, sha256: await sha256Hex(large) },
  file: {
    name: file.name,
    type: file.type,
    lastModified: file.lastModified,
    sha256: await sha256Hex(fileBytes),
  },
  value: description,
};

await check("an encrypted 5 MiB blob round-trips", async () => {
  await kvcrypt.set(kv, NODE_KEYS.blob, large, { encryptionKey: key });
  const { value } = await kvcrypt.get(kv, NODE_KEYS.blob, { encryptionKey: key });
  assert.equal(value.length, large.length);
  assert.equal(await sha256Hex(value), toDeno.blob.sha256);
});
await check("an encrypted File round-trips with its name, type and lastModified", async () => {
  await kvcrypt.set(kv, NODE_KEYS.file, file, { encryptionKey: key });
  await assertFile(
    await kvcrypt.getAsBlob(kv, NODE_KEYS.file, { encryptionKey: key }),
    toDeno.file,
  );
});
await check("a ranged stream returns exactly the range, across chunk boundaries", async () => {
  const range = { start: 1_000_003, end: 3_333_333 };
  const stream = await kvcrypt.getAsStream(kv, NODE_KEYS.blob, { range, encryptionKey: key });
  const bytes = await collect(stream);
  assert.equal(bytes.length, range.end - range.start);
  assert.equal(await sha256Hex(bytes), await sha256Hex(large.subarray(range.start, range.end)));
});
await check("getAsResponse answers a Range request with 206", async () => {
  const request = new Request("http://localhost/", { headers: { range: "bytes=10-19" } });
  const response = await kvcrypt.getAsResponse(kv, NODE_KEYS.blob, { request, encryptionKey: key });
  assert.equal(response.status, 206);
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), large.subarray(10, 20));
});
await check("a cryptoKv value round-trips (bigint, bytes, Date, Map)", async () => {
  const values = kvcrypt.cryptoKv(kv, key);
  await values.set(NODE_KEYS.value, valueOf(description));
  assert.deepEqual((await values.get(NODE_KEYS.value)).value, valueOf(description));
});
await check("a wrong key is refused with DecryptionError", async () => {
  await assert.rejects(
    kvcrypt.get(kv, NODE_KEYS.blob, { encryptionKey: wrongKey }),
    kvcrypt.DecryptionError,
  );
  await assert.rejects(
    kvcrypt.getAsBlob(kv, NODE_KEYS.file, { encryptionKey: wrongKey }),
    kvcrypt.DecryptionError,
  );
  await assert.rejects(
    kvcrypt.cryptoKv(kv, wrongKey).get(NODE_KEYS.value),
    kvcrypt.DecryptionError,
  );
});
kv.close();

await writeFile(join(dir, "node.json"), JSON.stringify(toDeno));
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
