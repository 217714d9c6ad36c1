/**
 * `migrateKvToolbox` against real kv-toolbox 0.30 output
 * (`testdata/kv-toolbox-0.30/`, a SQLite file kv-toolbox wrote itself, and
 * its manifest): every blob moved with its bytes and metadata, plain and
 * encrypted; skipped and failed blobs left intact; bad options; abort; a
 * crash at every commit of a migration, each blob readable in one format or
 * the other, and a second run that finishes the job.
 */

import assert from "node:assert/strict";
import { DecryptionError } from "./crypto.ts";
import { type EncryptionKey, get, getAsBlob, getMeta, set, vacuum } from "./blob.ts";
import { generateKey } from "./keys.ts";
import { migrateKvToolbox, type MigrateOptions, type MigrateProgress } from "./migrate.ts";
import { faultyKv } from "./_testing/faulty_kv.ts";
import { importKvToolboxKey, openKvToolboxBlob } from "./_kv_toolbox_crypto.ts";
import {
  KVTB_META,
  KVTB_PARTS,
  metaKeyOf,
  parseKvToolboxMeta,
  readAllParts,
} from "./_kv_toolbox_layout.ts";
import { recordMagic } from "./_record.ts";
import {
  fixtureEntries,
  fixtureTest,
  KV_TOOLBOX_KEY,
  MANIFEST,
  type ManifestBlob,
  withMemoryFixture,
} from "./_testing/kv_toolbox_fixture.ts";
import { assertRejects, hex, keyText, kvTest, snapshot } from "./_testing/util.ts";

// ---------------------------------------------------------------------------
// The fixture.

const kvToolboxKey = KV_TOOLBOX_KEY;
const BLOBS = MANIFEST.blobs;
const PLAIN_BLOBS = BLOBS.filter((blob) => !blob.encrypted);
const ENCRYPTED_BLOBS = BLOBS.filter((blob) => blob.encrypted);
const NOT_A_BLOB: Deno.KvKey = ["kvtb", "plain", "not-a-blob"];
const encryptionKey = await generateKey();

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** SHA-256 the manifest lists (kv-toolbox stored no parts for the empty plain value). */
async function expectedSha(blob: ManifestBlob): Promise<string> {
  return blob.sha256 ?? await sha256(new Uint8Array(0));
}

async function kvToolboxEntries(kv: Deno.Kv, key: Deno.KvKey): Promise<Deno.KvKey[]> {
  const keys: Deno.KvKey[] = [];
  for await (const entry of kv.list({ prefix: key })) {
    if (entry.key.includes(KVTB_PARTS) || entry.key.includes(KVTB_META)) keys.push(entry.key);
  }
  return keys;
}

// ---------------------------------------------------------------------------
// Reading either format.

interface Read {
  bytes: Uint8Array<ArrayBuffer>;
  kind: string;
  type: string;
  name: string | undefined;
  lastModified: number | undefined;
}

/** The blob as kv-toolbox stored it (read with the migration's own layout reader), or null. */
async function readKvToolbox(kv: Deno.Kv, key: Deno.KvKey): Promise<Read | null> {
  const entry = await kv.get(metaKeyOf(key));
  if (entry.versionstamp === null) return null;
  const meta = parseKvToolboxMeta(key, entry.value);
  let bytes = await readAllParts(kv, key, meta);
  if (meta.encrypted) {
    bytes = await openKvToolboxBlob(await importKvToolboxKey(kvToolboxKey), bytes, key);
  }
  const { kind, type, name, lastModified } = meta;
  return { bytes: new Uint8Array(bytes), kind, type, name, lastModified };
}

/** The blob as kvcrypt stores it, or null. */
async function readKvcrypt(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: { encryptionKey?: EncryptionKey },
): Promise<Read | null> {
  const meta = (await getMeta(kv, key, options)).value;
  if (meta === null) return null;
  assert.ok("kind" in meta, `${keyText(key)}: metadata opened`);
  const bytes = (await get(kv, key, options)).value!;
  const { kind, type, name, lastModified } = meta;
  return { bytes: new Uint8Array(bytes), kind, type, name, lastModified };
}

/** Asserts a read matches the manifest: SHA-256, size, kind, type, name, lastModified. */
async function assertMatches(read: Read, blob: ManifestBlob, where: string): Promise<void> {
  const label = `${keyText(blob.key)} (${where})`;
  assert.equal(read.bytes.length, blob.size, `${label}: size`);
  assert.equal(await sha256(read.bytes), await expectedSha(blob), `${label}: SHA-256`);
  assert.equal(read.kind, blob.kind, `${label}: kind`);
  assert.equal(read.type, blob.type ?? "", `${label}: type`);
  assert.equal(read.name, blob.name, `${label}: name`);
  assert.equal(read.lastModified, blob.lastModified, `${label}: lastModified`);
}

/** Options that read a migrated blob back. */
function readOptions(encrypted: boolean): { encryptionKey?: EncryptionKey } {
  return encrypted ? { encryptionKey } : {};
}

/** Every blob is readable in exactly one format, with the manifest's bytes and metadata. */
async function assertEachReadableOnce(
  kv: Deno.Kv,
  encryptedTarget: (blob: ManifestBlob) => boolean,
  where: string,
): Promise<{ kvToolbox: number; kvcrypt: number }> {
  const counts = { kvToolbox: 0, kvcrypt: 0 };
  for (const blob of BLOBS) {
    const old = await readKvToolbox(kv, blob.key);
    const record = await kv.get(blob.key);
    const moved = recordMagic(record.value) !== undefined;
    assert.ok((old !== null) !== moved, `${keyText(blob.key)} (${where}): exactly one format`);
    if (old !== null) {
      await assertMatches(old, blob, `${where}, kv-toolbox`);
      counts.kvToolbox++;
    } else {
      const read = await readKvcrypt(kv, blob.key, readOptions(encryptedTarget(blob)));
      await assertMatches(read!, blob, `${where}, kvcrypt`);
      counts.kvcrypt++;
    }
  }
  return counts;
}

async function assertNotABlobUntouched(kv: Deno.Kv, before: string): Promise<void> {
  const entry = await kv.get(NOT_A_BLOB);
  assert.deepEqual(entry.value, { hello: "world" });
  assert.equal(entry.versionstamp, before);
}

// ---------------------------------------------------------------------------
// Whole migrations.

fixtureTest("every blob migrates with its bytes and metadata, plain and encrypted", async (kv) => {
  const notABlob = (await kv.get(NOT_A_BLOB)).versionstamp!;
  const progress: MigrateProgress[] = [];
  const result = await migrateKvToolbox(kv, { prefix: ["kvtb"] }, {
    kvToolboxKey,
    encryptionKey,
    onProgress: (event) => progress.push(event),
  });
  assert.deepEqual(result, { migrated: BLOBS.length, skipped: 0, failed: 0 });
  assert.equal(progress.length, BLOBS.length);
  assert.deepEqual(progress.at(-1), {
    migrated: BLOBS.length,
    skipped: 0,
    failed: 0,
    key: progress.at(-1)!.key,
    outcome: "migrated",
  });
  const reported = new Set(progress.map((event) => keyText(event.key)));
  assert.deepEqual(reported, new Set(BLOBS.map((blob) => keyText(blob.key))));

  for (const blob of BLOBS) {
    const options = readOptions(blob.encrypted);
    await assertMatches((await readKvcrypt(kv, blob.key, options))!, blob, "kvcrypt");
    const meta = (await getMeta(kv, blob.key, options)).value!;
    assert.equal(meta.encrypted, blob.encrypted, `${keyText(blob.key)}: encrypted`);
    assert.equal(meta.verified, blob.encrypted, `${keyText(blob.key)}: verified`);
    const asBlob = await getAsBlob(kv, blob.key, options);
    assert.equal(asBlob instanceof File, blob.kind === "file", `${keyText(blob.key)}: File`);
    assert.equal(asBlob!.type, blob.type ?? "");
    assert.equal(await sha256(await asBlob!.bytes()), await expectedSha(blob));
    if (asBlob instanceof File) {
      assert.equal(asBlob.name, blob.name);
      assert.equal(asBlob.lastModified, blob.lastModified);
    }
    if (blob.encrypted) {
      // Stops a migrated encrypted blob from being readable without its key.
      await assertRejects(get(kv, blob.key), DecryptionError);
    }
  }
  assert.deepEqual(await kvToolboxEntries(kv, ["kvtb"]), []);
  await assertNotABlobUntouched(kv, notABlob);

  const before = await snapshot(kv);
  const again = await migrateKvToolbox(kv, { prefix: [] }, { kvToolboxKey, encryptionKey });
  assert.deepEqual(again, { migrated: 0, skipped: 0, failed: 0 });
  assert.deepEqual(await snapshot(kv), before);
});

fixtureTest(
  "without encryptionKey: plain blobs migrate, encrypted ones are skipped intact",
  async (kv) => {
    const skippedReasons: string[] = [];
    const result = await migrateKvToolbox(kv, { prefix: ["kvtb"] }, {
      kvToolboxKey,
      onProgress: (event) => event.outcome === "skipped" && skippedReasons.push(event.reason!),
    });
    assert.deepEqual(result, {
      migrated: PLAIN_BLOBS.length,
      skipped: ENCRYPTED_BLOBS.length,
      failed: 0,
    });
    assert.ok(skippedReasons.every((reason) => reason.includes("no encryptionKey")));
    for (const blob of PLAIN_BLOBS) {
      await assertMatches((await readKvcrypt(kv, blob.key, {}))!, blob, "kvcrypt");
      assert.equal((await getMeta(kv, blob.key)).value?.encrypted, false);
    }
    for (const blob of ENCRYPTED_BLOBS) {
      assert.equal(
        (await kv.get(blob.key)).versionstamp,
        null,
        `${keyText(blob.key)}: nothing at the key`,
      );
      await assertMatches((await readKvToolbox(kv, blob.key))!, blob, "kv-toolbox, skipped");
    }
  },
);

fixtureTest(
  "decryptToPlaintext stores encrypted kv-toolbox blobs as plain kvcrypt blobs",
  async (kv) => {
    const result = await migrateKvToolbox(kv, { prefix: ["kvtb", "encrypted"] }, {
      kvToolboxKey,
      decryptToPlaintext: true,
    });
    assert.deepEqual(result, { migrated: ENCRYPTED_BLOBS.length, skipped: 0, failed: 0 });
    for (const blob of ENCRYPTED_BLOBS) {
      await assertMatches((await readKvcrypt(kv, blob.key, {}))!, blob, "kvcrypt, plaintext");
      assert.equal((await getMeta(kv, blob.key)).value?.encrypted, false);
    }
    // The plain kv-toolbox blobs were outside the selector.
    for (const blob of PLAIN_BLOBS) assert.ok(await readKvToolbox(kv, blob.key));
  },
);

fixtureTest("encryptPlain encrypts the plain kv-toolbox blobs too", async (kv) => {
  const result = await migrateKvToolbox(kv, { prefix: ["kvtb"] }, {
    kvToolboxKey,
    encryptionKey,
    encryptPlain: true,
  });
  assert.deepEqual(result, { migrated: BLOBS.length, skipped: 0, failed: 0 });
  for (const blob of BLOBS) {
    await assertMatches((await readKvcrypt(kv, blob.key, { encryptionKey }))!, blob, "kvcrypt");
    assert.equal((await getMeta(kv, blob.key, { encryptionKey })).value?.verified, true);
  }
});

fixtureTest("no kvToolboxKey: encrypted blobs are skipped, never stored", async (kv) => {
  const result = await migrateKvToolbox(kv, { prefix: ["kvtb", "encrypted"] }, {
    encryptionKey,
  });
  assert.deepEqual(result, { migrated: 0, skipped: ENCRYPTED_BLOBS.length, failed: 0 });
  for (const blob of ENCRYPTED_BLOBS) {
    assert.equal((await kv.get(blob.key)).versionstamp, null);
    await assertMatches((await readKvToolbox(kv, blob.key))!, blob, "kv-toolbox, skipped");
  }
});

for (const bits of [128, 256]) {
  fixtureTest(
    `a wrong ${bits}-bit kvToolboxKey fails each encrypted blob and keeps it`,
    async (kv) => {
      const wrong = hex(crypto.getRandomValues(new Uint8Array(bits / 8)));
      const before = await snapshot(kv);
      const failures: MigrateProgress[] = [];
      const result = await migrateKvToolbox(kv, { prefix: ["kvtb", "encrypted"] }, {
        kvToolboxKey: wrong,
        encryptionKey,
        onProgress: (event) => failures.push(event),
      });
      assert.deepEqual(result, { migrated: 0, skipped: 0, failed: ENCRYPTED_BLOBS.length });
      for (const event of failures) {
        assert.equal(event.outcome, "failed");
        assert.ok(event.error instanceof DecryptionError);
        assert.match(event.reason!, /^Cannot migrate \[.*\]: the kv-toolbox blob does not decrypt/);
        assert.ok(!event.reason!.includes(wrong), "the message never shows the key");
      }
      // Nothing left behind (the staged kvcrypt chunks were never written: decryption comes first).
      assert.deepEqual(await snapshot(kv), before);
    },
  );
}

fixtureTest("the kv-toolbox key may be given as bytes", async (kv) => {
  const bytes = new Uint8Array(kvToolboxKey.match(/../g)!.map((pair) => parseInt(pair, 16)));
  const result = await migrateKvToolbox(kv, { prefix: ["kvtb", "encrypted"] }, {
    kvToolboxKey: bytes,
    encryptionKey,
  });
  assert.deepEqual(result, { migrated: ENCRYPTED_BLOBS.length, skipped: 0, failed: 0 });
});

kvTest("192-bit kv-toolbox keys open too", async (kv) => {
  const raw = crypto.getRandomValues(new Uint8Array(192 / 8));
  const aes = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const value = crypto.getRandomValues(new Uint8Array(1_000));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv }, aes, value),
  );
  await kv.set(["k", KVTB_PARTS, 1], new Uint8Array([...iv, ...sealed]));
  await kv.set(["k", KVTB_META], { kind: "buffer", size: 12 + sealed.length, encrypted: true });
  const result = await migrateKvToolbox(kv, { prefix: [] }, {
    kvToolboxKey: hex(raw).toUpperCase(),
    encryptionKey,
  });
  assert.deepEqual(result, { migrated: 1, skipped: 0, failed: 0 });
  assert.deepEqual((await get(kv, ["k"], { encryptionKey })).value, value);
});

// ---------------------------------------------------------------------------
// Blobs that cannot move.

fixtureTest("a value already at the blob's key: failed, both left as they are", async (kv) => {
  const [plainKey, storedKey] = [PLAIN_BLOBS[1]!.key, PLAIN_BLOBS[2]!.key];
  await kv.set(plainKey, "the application's own value");
  await set(kv, storedKey, new Uint8Array([1, 2, 3]));
  const reasons: string[] = [];
  const result = await migrateKvToolbox(kv, { prefix: ["kvtb", "plain"] }, {
    onProgress: (event) => event.outcome === "failed" && reasons.push(event.reason!),
  });
  assert.deepEqual(result, { migrated: PLAIN_BLOBS.length - 2, skipped: 0, failed: 2 });
  assert.ok(reasons.every((reason) => reason.includes("already holds a value")));
  assert.equal((await kv.get(plainKey)).value, "the application's own value");
  assert.deepEqual((await get(kv, storedKey)).value, new Uint8Array([1, 2, 3]));
  for (const blob of PLAIN_BLOBS.slice(1, 3)) {
    await assertMatches((await readKvToolbox(kv, blob.key))!, blob, "kv-toolbox, kept");
  }
});

fixtureTest("damaged kv-toolbox blobs fail and keep their entries", async (kv) => {
  const [truncated, retyped] = [PLAIN_BLOBS[4]!.key, PLAIN_BLOBS[5]!.key];
  const tampered = ENCRYPTED_BLOBS[4]!.key;
  await kv.delete([...truncated, KVTB_PARTS, 2]);
  await kv.set([...retyped, KVTB_PARTS, 1], "not bytes");
  const part = (await kv.get<Uint8Array>([...tampered, KVTB_PARTS, 2])).value!;
  part[100]! ^= 1;
  await kv.set([...tampered, KVTB_PARTS, 2], part);
  await kv.set(metaKeyOf(PLAIN_BLOBS[6]!.key), { kind: "folder" });
  const errors = new Map<string, unknown>();
  const result = await migrateKvToolbox(kv, { prefix: ["kvtb"] }, {
    kvToolboxKey,
    encryptionKey,
    onProgress: (event) =>
      event.outcome === "failed" && errors.set(keyText(event.key), event.error),
  });
  assert.deepEqual(result, { migrated: BLOBS.length - 4, skipped: 0, failed: 4 });
  assert.match(
    String(errors.get(keyText(truncated))),
    /CorruptBlobError: Cannot migrate .* parts hold/,
  );
  assert.match(String(errors.get(keyText(retyped))), /part 1 is not a Uint8Array/);
  assert.ok(errors.get(keyText(tampered)) instanceof DecryptionError);
  assert.match(String(errors.get(keyText(PLAIN_BLOBS[6]!.key))), /metadata has an unknown kind/);
  for (const key of [truncated, retyped, tampered, PLAIN_BLOBS[6]!.key]) {
    assert.equal((await kv.get(key)).versionstamp, null, `${keyText(key)}: nothing stored`);
    assert.ok((await kvToolboxEntries(kv, key)).length > 0, `${keyText(key)}: entries kept`);
  }
  // What the failed streams staged was cleaned up: every chunk left belongs to a live blob.
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
});

// ---------------------------------------------------------------------------
// Options.

fixtureTest("bad arguments and options are refused before anything changes", async (kv) => {
  const before = await snapshot(kv);
  const selector = { prefix: ["kvtb"] };
  const refused: [unknown, unknown, unknown, ErrorConstructor, RegExp][] = [
    [null, selector, {}, TypeError, /kv must be a Deno.Kv/],
    [kv, ["kvtb"], {}, TypeError, /selector/],
    [kv, selector, "options", TypeError, /options must be an object/],
    [kv, selector, { encryptPlain: "yes", encryptionKey }, TypeError, /encryptPlain/],
    [kv, selector, { decryptToPlaintext: 1 }, TypeError, /decryptToPlaintext/],
    [kv, selector, { signal: {} }, TypeError, /signal/],
    [kv, selector, { onProgress: "log" }, TypeError, /onProgress/],
    [kv, selector, { decryptToPlaintext: true, encryptionKey }, TypeError, /exclude/],
    [kv, selector, { encryptPlain: true }, TypeError, /needs an encryptionKey/],
    [kv, selector, { encryptionKey: "not a key" }, SyntaxError, /Cannot import key/],
    [kv, selector, { kvToolboxKey: 42 }, TypeError, /kvToolboxKey/],
    [kv, selector, { kvToolboxKey: "zz".repeat(16) }, SyntaxError, /not a hex string/],
    [kv, selector, { kvToolboxKey: "abc" }, SyntaxError, /not a hex string/],
    [kv, selector, { kvToolboxKey: "00".repeat(20) }, RangeError, /160 bits/],
    [kv, selector, { kvToolboxKey: new Uint8Array(8) }, RangeError, /64 bits/],
  ];
  for (const [store, sel, options, type, message] of refused) {
    await assertRejects(
      migrateKvToolbox(store as Deno.Kv, sel as Deno.KvListSelector, options as MigrateOptions),
      type,
      message,
      String(message),
    );
  }
  assert.deepEqual(await snapshot(kv), before);
});

fixtureTest("an aborted signal rejects with its reason; a later run finishes", async (kv) => {
  const early = new AbortController();
  early.abort(new Error("stop before starting"));
  const before = await snapshot(kv);
  await assert.rejects(
    migrateKvToolbox(kv, { prefix: ["kvtb"] }, { signal: early.signal }),
    /stop before starting/,
  );
  assert.deepEqual(await snapshot(kv), before);

  const midway = new AbortController();
  const reason = new Error("stop after two blobs");
  await assert.rejects(
    migrateKvToolbox(kv, { prefix: ["kvtb"] }, {
      kvToolboxKey,
      encryptionKey,
      signal: midway.signal,
      onProgress: (event) => event.migrated === 2 && midway.abort(reason),
    }),
    (error) => error === reason,
  );
  const counts = await assertEachReadableOnce(kv, (blob) => blob.encrypted, "aborted");
  assert.equal(counts.kvcrypt, 2);
  const rest = await migrateKvToolbox(kv, { prefix: ["kvtb"] }, { kvToolboxKey, encryptionKey });
  assert.deepEqual(rest, { migrated: BLOBS.length - 2, skipped: 0, failed: 0 });
});

fixtureTest("an onProgress that throws does not stop the migration", async (kv) => {
  const result = await migrateKvToolbox(kv, { prefix: ["kvtb", "plain"] }, {
    onProgress: () => {
      throw new Error("progress bar bug");
    },
  });
  assert.deepEqual(result, { migrated: PLAIN_BLOBS.length, skipped: 0, failed: 0 });
});

fixtureTest("range and start selectors find the same blobs", async (kv) => {
  const range = await migrateKvToolbox(kv, {
    start: ["kvtb", "plain", "bytes"],
    end: ["kvtb", "plain", "file"],
  });
  const bytesBlobs = PLAIN_BLOBS.filter((blob) => blob.key[2] === "bytes");
  assert.deepEqual(range, { migrated: bytesBlobs.length, skipped: 0, failed: 0 });
  const started = await migrateKvToolbox(kv, {
    prefix: ["kvtb", "plain"],
    start: ["kvtb", "plain", "c"],
  });
  assert.deepEqual(started, {
    migrated: PLAIN_BLOBS.length - bytesBlobs.length - 1,
    skipped: 0,
    failed: 0,
  });
  assert.ok(await readKvToolbox(kv, ["kvtb", "plain", "blob", "image"]), "before start: not moved");
});

// ---------------------------------------------------------------------------
// Streaming.

/** `kv` with hooks on every kv-toolbox part any list yields and on every atomic commit. */
function watchedKv(
  kv: Deno.Kv,
  hooks: { part?: (n: number) => void; commit?: () => void },
): Deno.Kv {
  return new Proxy(kv, {
    get(target, property) {
      if (property === "list") {
        return async function* (selector: Deno.KvListSelector, options?: Deno.KvListOptions) {
          for await (const entry of target.list(selector, options)) {
            if (entry.key.at(-2) === KVTB_PARTS) hooks.part?.(entry.key.at(-1) as number);
            yield entry;
          }
        };
      }
      if (property === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = () => {
            hooks.commit?.();
            return commit();
          };
          return op;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A plain kv-toolbox blob of `parts` parts of 63,000 bytes (part n filled with n) at `key`. */
async function storeManyParts(kv: Deno.Kv, key: Deno.KvKey, parts: number): Promise<void> {
  for (let n = 1; n <= parts; n++) {
    await kv.set([...key, KVTB_PARTS, n], new Uint8Array(63_000).fill(n));
  }
  await kv.set(metaKeyOf(key), { kind: "buffer", size: parts * 63_000 });
}

kvTest(
  "a plain blob streams: kvcrypt chunks are committed before its last part is read",
  async (kv) => {
    // 80 parts: 8 pages of parts, 77 kvcrypt chunks.
    const parts = 80;
    await storeManyParts(kv, ["big"], parts);
    const events: string[] = [];
    const watched = watchedKv(kv, {
      part: (n) => events.push(`part ${n}`),
      commit: () => events.push("commit"),
    });
    const result = await migrateKvToolbox(watched, { prefix: [] });
    assert.deepEqual(result, { migrated: 1, skipped: 0, failed: 0 });
    const firstCommit = events.indexOf("commit");
    const lastPart = events.lastIndexOf(`part ${parts}`);
    assert.ok(firstCommit !== -1 && firstCommit < lastPart, events.join(", "));
    const bytes = (await get(kv, ["big"])).value!;
    assert.equal(bytes.length, parts * 63_000);
    assert.equal(bytes[0], 1);
    assert.equal(bytes[bytes.length - 1], parts);
  },
);

kvTest(
  "an abort inside a blob rejects with the reason and leaves the kv-toolbox blob whole",
  async (kv) => {
    const parts = 80;
    await storeManyParts(kv, ["big"], parts);
    const controller = new AbortController();
    const reason = new Error("stop in the middle");
    const watched = watchedKv(kv, { part: (n) => n === 40 && controller.abort(reason) });
    await assert.rejects(
      migrateKvToolbox(watched, { prefix: [] }, { signal: controller.signal }),
      (error) => error === reason,
    );
    assert.equal((await kv.get(["big"])).versionstamp, null);
    const bytes = (await readKvToolbox(kv, ["big"]))!.bytes;
    assert.equal(bytes.length, parts * 63_000);
    // What the write had staged is gone.
    assert.deepEqual(await Array.fromAsync(kv.list({ prefix: ["__kvcrypt__"] })), []);
    assert.deepEqual(await migrateKvToolbox(kv, { prefix: [] }), {
      migrated: 1,
      skipped: 0,
      failed: 0,
    });
  },
);

fixtureTest("parts without metadata are removed only under a kvcrypt blob", async (kv) => {
  const [orphan, leftover] = [PLAIN_BLOBS[3]!.key, PLAIN_BLOBS[4]!.key];
  await kv.delete(metaKeyOf(orphan));
  await kv.delete(metaKeyOf(leftover));
  await set(kv, leftover, new Uint8Array([7]));
  const reasons = new Map<string, string | undefined>();
  const result = await migrateKvToolbox(kv, { prefix: ["kvtb", "plain"] }, {
    onProgress: (event) => reasons.set(keyText(event.key), event.reason),
  });
  // The orphan's parts are invisible to kv-toolbox and not under a kvcrypt blob: not counted.
  assert.deepEqual(result, { migrated: PLAIN_BLOBS.length - 1, skipped: 0, failed: 0 });
  assert.ok(!reasons.has(keyText(orphan)));
  assert.equal((await kvToolboxEntries(kv, orphan)).length, 3, "orphan parts kept");
  assert.match(reasons.get(keyText(leftover))!, /removed the kv-toolbox parts/);
  assert.deepEqual(await kvToolboxEntries(kv, leftover), []);
  assert.deepEqual((await get(kv, leftover)).value, new Uint8Array([7]));
});

// ---------------------------------------------------------------------------
// Crashes.

Deno.test("a crash at every commit leaves each blob in one format; a second run finishes", async () => {
  const options = { kvToolboxKey, encryptionKey };
  const entries = await fixtureEntries();
  const total = await withMemoryFixture(entries, async (counting) => {
    const faulty = faultyKv(counting);
    assert.deepEqual(await migrateKvToolbox(faulty.kv, { prefix: ["kvtb"] }, options), {
      migrated: BLOBS.length,
      skipped: 0,
      failed: 0,
    });
    return faulty.writes;
  });
  // Each blob: its chunk atomics (if any), the swap, one part delete.
  assert.ok(total >= 2 * BLOBS.length, `${total} writes`);
  for (let failAt = 1; failAt <= total; failAt++) {
    for (const mode of ["before", "after"] as const) {
      const where = `crash at write ${failAt} (${mode})`;
      await withMemoryFixture(entries, async (kv) => {
        const notABlob = (await kv.get(NOT_A_BLOB)).versionstamp!;
        const faulty = faultyKv(kv, { failAt, mode, crash: true });
        const first = await migrateKvToolbox(faulty.kv, { prefix: ["kvtb"] }, options);
        assert.ok(first.failed > 0, `${where}: the crash is reported`);
        const state = await assertEachReadableOnce(kv, (blob) => blob.encrypted, where);
        const second = await migrateKvToolbox(kv, { prefix: ["kvtb"] }, options);
        assert.equal(second.failed + second.skipped, 0, where);
        assert.ok(second.migrated >= state.kvToolbox, where);
        const done = await assertEachReadableOnce(kv, (blob) => blob.encrypted, `${where}, rerun`);
        assert.equal(done.kvcrypt, BLOBS.length, where);
        assert.deepEqual(await kvToolboxEntries(kv, ["kvtb"]), [], `${where}: no leftovers`);
        await assertNotABlobUntouched(kv, notABlob);
        await vacuum(kv, { olderThan: 0 });
        await assertEachReadableOnce(kv, (blob) => blob.encrypted, `${where}, vacuumed`);
      });
    }
  }
});
