/**
 * Fault injection, concurrency and vacuum races for the blob store (FORMAT.md,
 * "Writing a blob" and "Vacuum"): every write of a protocol fails in turn (before it applies,
 * after it applied with the reply lost, or as a crash that stops all later
 * writes), and the store must hold exactly the old or exactly the new value,
 * with only leftovers that `vacuum` removes.
 */

import assert from "node:assert/strict";
import {
  ConcurrentModificationError,
  get,
  getAsStream,
  getMeta,
  remove,
  rewrap,
  set,
  type SetOptions,
  stage,
  vacuum,
} from "./blob.ts";
import { generateKey } from "./keys.ts";
import {
  CHUNKS_IN_RECORD_COMMIT,
  CHUNKS_PER_ATOMIC,
  PLAIN_CHUNK_SIZE,
  PLAIN_INLINE_MAX,
  SEALED_CHUNK_SIZE,
  SEALED_INLINE_MAX,
} from "./_limits.ts";
import {
  countWrites,
  type FaultMode,
  faultyKv,
  InjectedFault,
  type WriteRecord,
} from "./_testing/faulty_kv.ts";
import type { VacuumResult } from "./_types.ts";
import { keyText, kvTest, randomBytes, withKv, withTempDir } from "./_testing/util.ts";

const INTERNAL = "__kvcrypt__";

// ---------------------------------------------------------------------------
// Helpers.

interface Format {
  name: "plain" | "encrypted";
  chunkSize: number;
  options: { encryptionKey?: SetOptions["encryptionKey"] };
}

const encryptionKey = await generateKey();
const FORMATS: readonly Format[] = [
  { name: "plain", chunkSize: PLAIN_CHUNK_SIZE, options: {} },
  { name: "encrypted", chunkSize: SEALED_CHUNK_SIZE, options: { encryptionKey } },
];
const PLAIN = FORMATS[0]!;

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/**
 * The internal keys the record at `key` accounts for: its version entry and
 * chunks 0..chunks-1, or nothing for an inline or absent blob. The id is
 * decoded from the record bytes (plain: bytes 4..20, KVC1: bytes 5..21) and
 * cross-checked with getMeta's hex id.
 */
async function expectedInternal(kv: Deno.Kv, key: Deno.KvKey): Promise<Set<string>> {
  const entry = await kv.get<Uint8Array>(key);
  const expected = new Set<string>();
  if (entry.value === null) return expected;
  assert.ok(entry.value instanceof Uint8Array, "the record is bytes");
  const magic = new TextDecoder().decode(entry.value.subarray(0, 4));
  let id: Uint8Array;
  let inlineMax: number;
  if (magic === "KVP1") {
    id = entry.value.slice(4, 20);
    inlineMax = PLAIN_INLINE_MAX;
  } else {
    assert.equal(magic, "KVC1", "the record has a kvcrypt magic");
    id = entry.value.slice(5, 21);
    inlineMax = SEALED_INLINE_MAX;
  }
  const meta = (await getMeta(kv, key)).value;
  assert.ok(meta !== null);
  assert.equal(meta.id, id.toHex(), "getMeta's id is the record's id");
  if (meta.size <= inlineMax) return expected;
  const versionKey = [INTERNAL, "version", id];
  const version = await kv.get<Uint8Array>(versionKey);
  assert.ok(version.value instanceof Uint8Array, "the live record's version entry exists");
  assert.equal(version.value[0], 1, "the live record's version entry is live, not a tombstone");
  expected.add(keyText(versionKey));
  for (let index = 0; index < meta.chunks; index++) {
    expected.add(keyText([INTERNAL, "chunk", id, index]));
  }
  return expected;
}

async function internalKeys(kv: Deno.Kv): Promise<Deno.KvKey[]> {
  const keys: Deno.KvKey[] = [];
  for await (const entry of kv.list({ prefix: [INTERNAL] })) keys.push(entry.key);
  return keys;
}

/** Internal entries the live record at `key` does not account for, by kind. */
async function leftovers(kv: Deno.Kv, key: Deno.KvKey): Promise<VacuumResult> {
  const expected = await expectedInternal(kv, key);
  const actual = await internalKeys(kv);
  const actualText = new Set(actual.map(keyText));
  for (const text of expected) assert.ok(actualText.has(text), `live entry ${text} is missing`);
  const extra = actual.filter((entry) => !expected.has(keyText(entry)));
  return {
    versions: extra.filter((entry) => entry[1] === "version").length,
    chunks: extra.filter((entry) => entry[1] === "chunk").length,
    // Every leftover is provably orphaned: vacuum must not skip one.
    skipped: 0,
  };
}

/** The only internal entries are the live record's version entry and exactly its chunks. */
async function assertOnlyLive(kv: Deno.Kv, key: Deno.KvKey, message: string): Promise<void> {
  const expected = [...await expectedInternal(kv, key)].sort();
  const actual = (await internalKeys(kv)).map(keyText).sort();
  assert.deepEqual(actual, expected, message);
}

async function readBytes(
  kv: Deno.Kv,
  key: Deno.KvKey,
  format: Format,
): Promise<Uint8Array | null> {
  return (await get(kv, key, format.options)).value;
}

async function digest(bytes: Uint8Array): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>))
    .toHex();
}

/** Chunk atomics a write of `chunks` chunks commits before its record (stage). */
function chunkAtomics(chunks: number): number {
  return Math.ceil(chunks / CHUNKS_PER_ATOMIC);
}

/**
 * Atomics `set` commits up to and including its record: full chunk atomics,
 * then the record commit, which carries a last batch of up to
 * CHUNKS_IN_RECORD_COMMIT chunks.
 */
function setCommits(chunks: number): number {
  return Math.floor(chunks / CHUNKS_PER_ATOMIC) + 1;
}

function isUserKey(key: Deno.KvKey, userKey: Deno.KvKey): boolean {
  return keyText(key) === keyText(userKey);
}

// ---------------------------------------------------------------------------
// The wrapper itself.

kvTest(
  "faulty kv: counts writes, fails before or after applying, crashes, passes reads",
  async (kv) => {
    const before = faultyKv(kv, { failAt: 2, mode: "before" });
    assert.ok(
      (await before.kv.atomic().check({ key: ["a"], versionstamp: null }).set(["a"], 1)
        .commit()).ok,
    );
    await assert.rejects(before.kv.set(["b"], 2), InjectedFault);
    assert.equal((await kv.get(["b"])).versionstamp, null, "'before' does not apply the write");
    await before.kv.delete(["a"]); // write 3: only write 2 fails
    assert.equal((await before.kv.get(["a"])).value, null, "reads pass through");
    assert.equal(before.writes, 3);
    assert.deepEqual(before.log.map((write) => write.kind), ["commit", "set", "delete"]);

    const after = faultyKv(kv, { failAt: 1, mode: "after" });
    await assert.rejects(after.kv.atomic().set(["c"], 3).commit(), InjectedFault);
    assert.equal((await kv.get(["c"])).value, 3, "'after' applies the write, then throws");

    const crash = faultyKv(kv, { failAt: 1, mode: "after", crash: true });
    await assert.rejects(crash.kv.set(["d"], 4), InjectedFault);
    await assert.rejects(crash.kv.set(["e"], 5), InjectedFault);
    assert.equal((await kv.get(["d"])).value, 4);
    assert.equal((await kv.get(["e"])).versionstamp, null, "a crash stops every later write");
    assert.deepEqual((await crash.kv.getMany([["c"], ["d"]])).map((e) => e.value), [3, 4]);
    const listed = await Array.fromAsync(crash.kv.list({ start: ["a"], end: ["z"] }));
    assert.deepEqual(listed.map((e) => e.key), [["c"], ["d"]]);
    assert.ok(crash.kv instanceof Deno.Kv);
  },
);

// ---------------------------------------------------------------------------
// The fault matrix.

interface Scenario {
  name: string;
  format: Format;
  key: Deno.KvKey;
  /** Value before the operation (null: absent). */
  before: Uint8Array | null;
  /** Value after the operation (null: removed). */
  after: Uint8Array | null;
  /** Prepares the store (raw). */
  prepare(kv: Deno.Kv): Promise<void>;
  /** The operation under test, on the wrapped store. */
  run(kv: Deno.Kv): Promise<Deno.KvCommitResult | Deno.KvCommitError>;
  /**
   * Whether the operation detects a lost reply of its publishing write (set
   * re-reads the record: FORMAT.md, "Writing a blob", step 4) and resolves ok.
   */
  detectsLostReply: boolean;
}

interface Variant {
  mode: FaultMode;
  crash: boolean;
}

const VARIANTS: readonly Variant[] = [
  { mode: "before", crash: false },
  { mode: "after", crash: false },
  { mode: "before", crash: true },
  { mode: "after", crash: true },
];

/**
 * Runs the scenario once cleanly to learn its writes and which one publishes
 * (the one write that mutates the user key), then once per N and variant with
 * write N failing, and checks the outcome precisely.
 */
async function runMatrix(
  scenario: Scenario,
): Promise<{ runs: number; writes: number; publish: number; clean: WriteRecord[] }> {
  const { key, format } = scenario;
  const clean = await withKv(async (kv) => {
    await scenario.prepare(kv);
    const clean = await countWrites(kv, (wrapped) => scenario.run(wrapped));
    assert.deepEqual(await readBytes(kv, key, format), scenario.after, "clean run result");
    await assertOnlyLive(kv, key, "a clean run leaves nothing behind");
    return clean;
  });
  const publishing = clean.filter((write) => write.keys.some((k) => isUserKey(k, key)));
  assert.equal(publishing.length, 1, "exactly one write of a clean run touches the record");
  const publish = publishing[0]!.n;
  // Chunks land before the record that points to them, or with it; after it, nothing writes a chunk.
  clean.forEach((write) => {
    const setsChunk = write.mutations.some((m) => m.type === "set" && m.key[1] === "chunk");
    if (setsChunk) assert.ok(write.n <= publish, `write ${write.n} sets chunks after the record`);
  });
  let runs = 0;
  for (const { mode, crash } of VARIANTS) {
    for (let n = 1; n <= clean.length + 1; n++) {
      const label = `${scenario.name}: write ${n}/${clean.length} fails ${mode}` +
        `${crash ? " (crash)" : ""}, publishing write ${publish}`;
      await withKv(async (kv) => {
        await scenario.prepare(kv);
        const faulty = faultyKv(kv, { failAt: n, mode, crash });
        const outcome = await settle(scenario.run(faulty.kv));
        runs++;
        // Up to write N the run takes the clean run's path, so the fault fires iff N exists.
        assert.equal(faulty.injected.length > 0, n <= clean.length, `${label}: fault fired`);
        if (n <= clean.length) {
          assert.equal(faulty.log[n - 1]!.kind, clean[n - 1]!.kind, `${label}: same path`);
        }
        const published = mode === "before" ? n > publish : n >= publish;
        // The operation resolved, or rejected with the injected error and nothing else.
        if (!outcome.ok) {
          assert.ok(
            outcome.error instanceof InjectedFault,
            `${label}: rejected with ${String(outcome.error)}, not the injected fault`,
          );
        }
        if (!published) {
          assert.equal(outcome.ok, false, `${label}: must reject when nothing was published`);
        } else if (n !== publish || scenario.detectsLostReply) {
          // Failures after the publishing write are cleanup: swallowed. A lost
          // reply of the publishing write itself is detected by re-reading.
          assert.ok(outcome.ok, `${label}: must resolve: ${outcome.ok || String(outcome.error)}`);
          assert.equal(outcome.value.ok, true, `${label}: must resolve { ok: true }`);
        }
        const value = await readBytes(kv, key, format);
        assert.deepEqual(
          value,
          published ? scenario.after : scenario.before,
          `${label}: must read the ${published ? "new" : "old"} value`,
        );
        const left = await leftovers(kv, key);
        if (!crash && !outcome.ok && !published) {
          // A failed write with working cleanup removes what it wrote itself.
          assert.deepEqual(
            left,
            { versions: 0, chunks: 0, skipped: 0 },
            `${label}: the writer cleaned up`,
          );
        }
        // Every leftover is one vacuum finds: chunks without a version entry would stay.
        const removed = await vacuum(kv, { olderThan: 0 });
        assert.deepEqual(removed, left, `${label}: vacuum removes exactly the leftovers`);
        await assertOnlyLive(kv, key, `${label}: after vacuum only the live version remains`);
        assert.deepEqual(
          await readBytes(kv, key, format),
          value,
          `${label}: vacuum kept the value`,
        );
      });
    }
  }
  return { runs, writes: clean.length, publish, clean };
}

/**
 * Checks a clean run's publishing write of a `chunks`-chunk blob: it sets the
 * last batch of chunks (all of them, and the version entry, for a blob of at
 * most CHUNKS_IN_RECORD_COMMIT chunks: the one-commit path) and the record,
 * and tombstones the replaced version if there is one.
 */
function assertRecordCommit(
  write: WriteRecord,
  key: Deno.KvKey,
  chunks: number,
  replaces: boolean,
): void {
  const oneCommit = chunks <= CHUNKS_IN_RECORD_COMMIT;
  const first = chunks - (chunks % CHUNKS_PER_ATOMIC);
  const sets = write.mutations.filter((m) => m.type === "set");
  const chunkIndexes = sets.filter((m) => m.key[1] === "chunk").map((m) => m.key[3]);
  assert.deepEqual(
    chunkIndexes,
    Array.from({ length: chunks - first }, (_, offset) => first + offset),
    "the last batch of chunks",
  );
  const versions = sets.filter((m) => m.key[1] === "version").length;
  assert.equal(versions, (oneCommit ? 1 : 0) + (replaces ? 1 : 0), "version entry, tombstone");
  assert.equal(sets.filter((m) => isUserKey(m.key, key)).length, 1, "the record");
  assert.equal(write.mutations.length, sets.length, "nothing but sets");
  // A later batch checks the version entry the first chunk atomic created.
  const checksVersion = write.checks.some((k) => k[1] === "version");
  assert.equal(checksVersion, true, "the version entry is checked (absent, or as written)");
}

function overwrite(
  format: Format,
  name: string,
  oldSize: number | null,
  newSize: number,
  extra: { cas?: boolean } = {},
): Scenario {
  const key = ["faults", name];
  const before = oldSize === null ? null : randomBytes(oldSize);
  const after = randomBytes(newSize);
  let versionstamp: string | null = null;
  return {
    name: `${format.name} ${name}`,
    format,
    key,
    before,
    after,
    async prepare(kv) {
      if (before !== null) await set(kv, key, before, format.options);
      versionstamp = (await kv.get(key)).versionstamp;
    },
    run: (kv) =>
      set(kv, key, after, {
        ...format.options,
        ...(extra.cas ? { versionstamp } : {}),
      }),
    detectsLostReply: true,
  };
}

for (const format of FORMATS) {
  const size = format.chunkSize;
  Deno.test(`faults: ${format.name} overwrite of 5 chunks by 7 chunks (one commit), every write fails`, async () => {
    const scenario = overwrite(format, "5to7", 5 * size, 7 * size);
    const { runs, writes, publish, clean } = await runMatrix(scenario);
    assert.equal(publish, 1, "version entry, chunks and record in one atomic");
    assertRecordCommit(clean[0]!, scenario.key, 7, true);
    assert.equal(writes, 2, "then one atomic deletes the replaced version");
    assert.equal(runs, 4 * (writes + 1));
  });

  Deno.test(`faults: ${format.name} first write of 7 chunks (one commit), every write fails`, async () => {
    const scenario = overwrite(format, "first", null, 7 * size);
    const { writes, publish, clean } = await runMatrix(scenario);
    assert.equal(publish, 1);
    assertRecordCommit(clean[0]!, scenario.key, 7, false);
    assert.equal(writes, publish, "nothing to clean up after a first write");
  });

  Deno.test(`faults: ${format.name} overwrite by ${CHUNKS_IN_RECORD_COMMIT} chunks, the most in one commit`, async () => {
    const scenario = overwrite(format, "5to11", 5 * size, CHUNKS_IN_RECORD_COMMIT * size);
    const { writes, publish, clean } = await runMatrix(scenario);
    assert.equal(publish, 1);
    assertRecordCommit(clean[0]!, scenario.key, CHUNKS_IN_RECORD_COMMIT, true);
    assert.equal(writes, 2);
  });

  Deno.test(`faults: ${format.name} overwrite by ${CHUNKS_IN_RECORD_COMMIT + 1} chunks, chunks before the record`, async () => {
    const chunks = CHUNKS_IN_RECORD_COMMIT + 1;
    const { writes, publish } = await runMatrix(
      overwrite(format, "5to12", 5 * size, chunks * size - 1),
    );
    assert.equal(publish, setCommits(chunks), "a full chunk atomic, then the record commit");
    assert.equal(publish, 2);
    assert.ok(writes > publish);
  });

  Deno.test(`faults: ${format.name} overwrite by 30 chunks (atomics in flight), every write fails`, async () => {
    const scenario = overwrite(format, "5to30", 5 * size, 30 * size - 7);
    const { writes, publish, clean } = await runMatrix(scenario);
    assert.ok(chunkAtomics(30) >= 3, "several chunk atomics, some in flight together");
    assert.equal(publish, setCommits(30), "two chunk atomics, then chunks 24-29 with the record");
    assertRecordCommit(clean[publish - 1]!, scenario.key, 30, true);
    assert.ok(writes > publish);
  });
}

Deno.test("faults: plain chunked blob replaced by an inline one, every write fails", async () => {
  const { writes, publish } = await runMatrix(
    overwrite(PLAIN, "5toInline", 5 * PLAIN_CHUNK_SIZE, 1000),
  );
  assert.equal(publish, 1, "an inline blob is one atomic");
  assert.ok(writes > publish);
});

Deno.test("faults: plain compare-and-set overwrite, every write fails", async () => {
  const scenario = overwrite(PLAIN, "cas", 3 * PLAIN_CHUNK_SIZE + 5, 4 * PLAIN_CHUNK_SIZE, {
    cas: true,
  });
  const { writes, publish, clean } = await runMatrix(scenario);
  assert.equal(publish, 1);
  assertRecordCommit(clean[0]!, scenario.key, 4, true);
  assert.ok(writes > publish);
});

for (const format of FORMATS) {
  Deno.test(`faults: ${format.name} remove of a 5-chunk blob, every write fails`, async () => {
    const key = ["faults", "remove"];
    const before = randomBytes(5 * format.chunkSize - 100);
    const { writes, publish } = await runMatrix({
      name: `${format.name} remove`,
      format,
      key,
      before,
      after: null,
      prepare: async (kv) => {
        await set(kv, key, before, format.options);
      },
      run: (kv) => remove(kv, key),
      detectsLostReply: true,
    });
    assert.equal(publish, 1, "the record is removed first");
    assert.ok(writes > publish, "then the chunks");
  });

  Deno.test(`faults: ${format.name} stage and commit with another mutation, every write fails`, async () => {
    const key = ["faults", "stage"];
    const before = randomBytes(5 * format.chunkSize);
    const after = randomBytes(6 * format.chunkSize + 3);
    const { writes, publish } = await runMatrix({
      name: `${format.name} stage`,
      format,
      key,
      before,
      after,
      prepare: async (kv) => {
        await set(kv, key, before, format.options);
      },
      // The caller's pattern from stage()'s documentation.
      run: async (kv) => {
        const staged = await stage(kv, key, after, format.options);
        const op = staged.addTo(kv.atomic()).set(["faults", "stage-index"], 1);
        let result: Deno.KvCommitResult | Deno.KvCommitError;
        try {
          result = await op.commit();
        } catch (error) {
          await staged.complete(error);
          throw error;
        }
        await staged.complete(result);
        return result;
      },
      // The caller's own commit threw: it rethrows even when complete() found it applied.
      detectsLostReply: false,
    });
    assert.equal(publish, chunkAtomics(7) + 1);
    assert.ok(writes > publish);
  });
}

// ---------------------------------------------------------------------------
// Faults inside vacuum itself.

/**
 * Leaves the store with a live blob C at `key` plus two kinds of leftovers: an
 * unpublished version (a write of B that crashed at its record commit) and
 * whatever a write of C that crashed right after its record commit left of
 * the replaced A.
 */
async function prepareLeftovers(kv: Deno.Kv, key: Deno.KvKey, values: Uint8Array[]) {
  const [a, b, c] = values;
  await set(kv, key, a!);
  const publishOf = async (value: Uint8Array) => {
    return await withKv(async (scratch) => {
      await set(scratch, key, a!);
      const log = await countWrites(scratch, (wrapped) => set(wrapped, key, value));
      return log.findIndex((write) => write.keys.some((k) => isUserKey(k, key))) + 1;
    });
  };
  const crashB = faultyKv(kv, { failAt: await publishOf(b!), mode: "before", crash: true });
  await assert.rejects(set(crashB.kv, key, b!), InjectedFault);
  const crashC = faultyKv(kv, { failAt: await publishOf(c!) + 1, mode: "before", crash: true });
  await set(crashC.kv, key, c!);
}

Deno.test("faults: every write of vacuum fails; the live blob survives, a rerun finishes", async () => {
  const key = ["faults", "vacuum"];
  // B is written in chunk atomics before its record (more chunks than one commit holds).
  const values = [5, CHUNKS_IN_RECORD_COMMIT + 3, 7].map((chunks) =>
    randomBytes(chunks * PLAIN_CHUNK_SIZE)
  );
  const { clean, initial } = await withKv(async (kv) => {
    await prepareLeftovers(kv, key, values);
    const initial = await leftovers(kv, key);
    assert.ok(initial.versions >= 2, `leftovers to vacuum: ${JSON.stringify(initial)}`);
    const clean = await countWrites(kv, (wrapped) => vacuum(wrapped, { olderThan: 0 }));
    await assertOnlyLive(kv, key, "a clean vacuum removes every leftover");
    return { clean, initial };
  });
  assert.ok(clean.length >= 2);
  for (const { mode, crash } of VARIANTS) {
    for (let n = 1; n <= clean.length + 1; n++) {
      const label = `vacuum write ${n}/${clean.length} fails ${mode}${crash ? " (crash)" : ""}`;
      await withKv(async (kv) => {
        await prepareLeftovers(kv, key, values);
        assert.deepEqual(await leftovers(kv, key), initial, `${label}: same leftovers`);
        const faulty = faultyKv(kv, { failAt: n, mode, crash });
        const outcome = await settle(vacuum(faulty.kv, { olderThan: 0 }));
        if (!outcome.ok) {
          assert.ok(outcome.error instanceof InjectedFault, `${label}: ${String(outcome.error)}`);
        }
        assert.equal(outcome.ok, n > clean.length, `${label}: vacuum rejects iff a write failed`);
        assert.deepEqual(await readBytes(kv, key, PLAIN), values[2], `${label}: live blob intact`);
        const left = await leftovers(kv, key);
        assert.deepEqual(await vacuum(kv, { olderThan: 0 }), left, `${label}: a rerun finishes`);
        await assertOnlyLive(kv, key, `${label}: after the rerun`);
      });
    }
  }
});

// ---------------------------------------------------------------------------
// Concurrency: many writers and readers on one key.

function concurrentValues(chunkSize: number): Uint8Array[] {
  const values: Uint8Array[] = [];
  for (let i = 0; i < 20; i++) {
    if (i % 3 === 0) {
      values.push(randomBytes(512 + Math.floor(Math.random() * 1024))); // inline, ~1 KiB
    } else {
      const chunks = 3 + (i % 8); // 3..10 chunks, last one partial
      values.push(
        randomBytes((chunks - 1) * chunkSize + 1 + Math.floor(Math.random() * (chunkSize - 1))),
      );
    }
  }
  return values;
}

async function concurrentWritersAndReaders(kv: Deno.Kv, format: Format): Promise<void> {
  const key = ["concurrent", format.name];
  const initial = randomBytes(4 * format.chunkSize);
  await set(kv, key, initial, format.options);
  const values = concurrentValues(format.chunkSize);
  const allowed = new Set(await Promise.all([initial, ...values].map(digest)));
  assert.equal(allowed.size, values.length + 1);

  let writing = true;
  const stats = { gets: 0, streams: 0, streamConflicts: 0 };
  const seen = new Set<string>();
  const getLoop = async () => {
    do {
      const value = await readBytes(kv, key, format);
      assert.ok(value !== null, "a blob is always stored");
      const hash = await digest(value);
      assert.ok(allowed.has(hash), "get returned a value nobody wrote");
      seen.add(hash);
      stats.gets++;
    } while (writing);
  };
  const streamLoop = async () => {
    do {
      try {
        const stream = await getAsStream(kv, key, format.options);
        assert.ok(stream !== null, "a blob is always stored");
        const parts: Uint8Array[] = [];
        for await (const part of stream) parts.push(part);
        const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
        let offset = 0;
        for (const part of parts) {
          bytes.set(part, offset);
          offset += part.length;
        }
        assert.ok(allowed.has(await digest(bytes)), "a stream returned a value nobody wrote");
        stats.streams++;
      } catch (error) {
        // Only a stream may fail, and only because its version was replaced.
        if (!(error instanceof ConcurrentModificationError)) throw error;
        stats.streamConflicts++;
      }
    } while (writing);
  };
  const readers = [getLoop(), getLoop(), getLoop(), streamLoop()].map(settle);
  const writes = await Promise.all(
    values.map((value) => settle(set(kv, key, value, format.options))),
  );
  writing = false;
  for (const reader of await Promise.all(readers)) {
    if (!reader.ok) throw reader.error;
  }
  assert.ok(stats.gets >= 3 && stats.streams + stats.streamConflicts >= 1, JSON.stringify(stats));
  assert.ok(seen.size >= 2, "the readers ran while values were being replaced");

  const versionstamps: string[] = [];
  for (const write of writes) {
    if (!write.ok) throw write.error;
    assert.equal(write.value.ok, true, "a last-writer-wins set always commits");
    versionstamps.push(write.value.versionstamp);
  }
  // The last commit (highest versionstamp) is what is stored.
  const last = versionstamps.indexOf([...versionstamps].sort().at(-1)!);
  const final = await get(kv, key, format.options);
  assert.equal(final.versionstamp, versionstamps[last]);
  assert.deepEqual(final.value, values[last]);
  // Every overwrite deleted what it replaced: no orphan even before vacuum.
  await assertOnlyLive(kv, key, "concurrent writers leave no orphan");
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
  await assertOnlyLive(kv, key, "after vacuum");
}

for (const format of FORMATS) {
  kvTest(
    `concurrency: 20 ${format.name} writers and 4 readers on one key (:memory:)`,
    async (kv) => {
      await concurrentWritersAndReaders(kv, format);
    },
  );
}

kvTest("concurrency: sets and removes race on one key while readers read", async (kv) => {
  const key = ["concurrent", "mixed"];
  const values = concurrentValues(PLAIN_CHUNK_SIZE).slice(0, 12);
  const allowed = new Set(await Promise.all(values.map(digest)));
  await set(kv, key, values[0]!);
  let running = true;
  let reads = 0;
  const readLoop = async () => {
    do {
      const value = await readBytes(kv, key, PLAIN);
      if (value !== null) assert.ok(allowed.has(await digest(value)), "a value nobody wrote");
      reads++;
    } while (running);
  };
  const readers = [readLoop(), readLoop()].map(settle);
  // 12 sets and 6 removes, interleaved, all at once.
  const ops: {
    value: Uint8Array | null;
    result: Promise<Deno.KvCommitResult | Deno.KvCommitError>;
  }[] = [];
  for (const value of values) {
    ops.push({ value, result: set(kv, key, value) });
    if (ops.length % 3 === 1) ops.push({ value: null, result: remove(kv, key) });
  }
  const results = await Promise.all(ops.map((op) => settle(op.result)));
  running = false;
  for (const reader of await Promise.all(readers)) if (!reader.ok) throw reader.error;
  assert.ok(reads >= 2);
  const stamps = results.map((result) => {
    if (!result.ok) throw result.error;
    assert.ok(result.value.ok, "unconditional sets and removes always commit");
    return result.value.versionstamp;
  });
  // The operation that committed last decides what is stored.
  const last = stamps.indexOf([...stamps].sort().at(-1)!);
  const final = await get(kv, key);
  assert.deepEqual(final.value, ops[last]!.value);
  await assertOnlyLive(kv, key, "sets and removes leave no orphan");
  assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
});

Deno.test("concurrency: 20 writers and 4 readers on one key (file-backed KV)", async () => {
  await withTempDir(async (dir) => {
    for (const format of FORMATS) {
      // One store per format: the orphan check counts every internal entry of the store.
      await withKv(async (kv) => {
        await concurrentWritersAndReaders(kv, format);
      }, { path: `${dir}/${format.name}.sqlite` });
    }
  });
});

// ---------------------------------------------------------------------------
// Compare-and-set: two writers with the same versionstamp.

for (const format of FORMATS) {
  Deno.test(`cas: two ${format.name} writers with one versionstamp, exactly one wins`, async () => {
    const size = format.chunkSize;
    for (let round = 0; round < 6; round++) {
      await withKv(async (kv) => {
        const key = ["cas", round];
        const createOnly = round >= 4;
        if (!createOnly) await set(kv, key, randomBytes(3 * size), format.options);
        const versionstamp = createOnly ? null : (await getMeta(kv, key)).versionstamp;
        assert.ok(createOnly || versionstamp !== null);
        const a = randomBytes(4 * size + 10);
        const b = round % 2 === 0 ? randomBytes(5 * size) : randomBytes(900);
        const [ra, rb] = await Promise.all([
          set(kv, key, a, { ...format.options, versionstamp }),
          set(kv, key, b, { ...format.options, versionstamp }),
        ]);
        assert.equal(Number(ra.ok) + Number(rb.ok), 1, `round ${round}: exactly one wins`);
        const winner = ra.ok ? ra : rb;
        assert.ok(winner.ok);
        const stored = await get(kv, key, format.options);
        assert.deepEqual(stored.value, ra.ok ? a : b, `round ${round}: the winner's value`);
        assert.equal(stored.versionstamp, winner.versionstamp);
        // The loser cleaned up by itself, and the winner deleted what it replaced.
        await assertOnlyLive(kv, key, `round ${round}: no orphan without vacuum`);
        assert.deepEqual(await vacuum(kv, { olderThan: 0 }), {
          versions: 0,
          chunks: 0,
          skipped: 0,
        });
      });
    }
  });
}

// ---------------------------------------------------------------------------
// Vacuum racing a writer.

const RACE_CHUNKS = 40;

/** A stream of `bytes` in chunk-sized parts; each pull first awaits `pause(index)`. */
function slowStream(
  bytes: Uint8Array,
  partSize: number,
  pause: (index: number) => Promise<void>,
): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const start = index * partSize;
      if (start >= bytes.length) {
        controller.close();
        return;
      }
      await pause(index);
      controller.enqueue(bytes.slice(start, start + partSize));
      index++;
    },
  }, { highWaterMark: 0 });
}

for (const format of FORMATS) {
  kvTest(
    `vacuum race: ${format.name} vacuum mid-write makes the write fail cleanly`,
    async (kv) => {
      const key = ["race", "gated"];
      const old = randomBytes(3 * format.chunkSize);
      await set(kv, key, old, format.options);
      const data = randomBytes(RACE_CHUNKS * format.chunkSize);
      const gate = Promise.withResolvers<void>();
      const firstBatch = Promise.withResolvers<void>();
      const stream = slowStream(
        data,
        format.chunkSize,
        (index) => index === CHUNKS_PER_ATOMIC + 1 ? gate.promise : Promise.resolve(),
      );
      // Through a recording wrapper (no faults), to see what reaches the store.
      const recorded = faultyKv(kv);
      const writing = settle(set(recorded.kv, key, stream, {
        ...format.options,
        onProgress: (bytes) => {
          if (bytes >= CHUNKS_PER_ATOMIC * format.chunkSize) firstBatch.resolve();
        },
      }));
      await firstBatch.promise; // the version entry and the first 12 chunks are committed
      // The write is in flight: its version is older than 0 ms and unpublished.
      assert.deepEqual(await vacuum(kv, { olderThan: 0 }), {
        versions: 1,
        chunks: CHUNKS_PER_ATOMIC,
        skipped: 0,
      });
      const vacuumedAt = recorded.writes;
      gate.resolve();
      const outcome = await writing;
      // No chunk may land once the version is tombstoned: later chunk atomics fail their check.
      const late = recorded.log.filter((write) =>
        write.n > vacuumedAt &&
        write.mutations.some((m) => m.type === "set" && m.key[1] === "chunk")
      );
      assert.ok(late.length > 0, "the write sent chunks after the vacuum");
      for (const write of late) {
        assert.equal(write.outcome, "check-failed", `chunk write ${write.n} landed after vacuum`);
      }
      assert.ok(
        !recorded.log.some((write) => write.keys.some((k) => isUserKey(k, key))),
        "the record was never written",
      );
      assert.ok(!outcome.ok, "the write must fail once vacuum removed its version");
      assert.ok(outcome.error instanceof ConcurrentModificationError, String(outcome.error));
      assert.deepEqual(await readBytes(kv, key, format), old);
      await assertOnlyLive(kv, key, "the failed write cleaned up after itself");
      assert.deepEqual(await vacuum(kv, { olderThan: 0 }), { versions: 0, chunks: 0, skipped: 0 });
    },
  );
}

Deno.test("vacuum race: vacuum just before every write of a 40-chunk overwrite", async () => {
  const key = ["race", "hook"];
  const old = randomBytes(3 * PLAIN_CHUNK_SIZE);
  const data = randomBytes(RACE_CHUNKS * PLAIN_CHUNK_SIZE - 3);
  const clean = await withKv(async (kv) => {
    await set(kv, key, old);
    return await countWrites(kv, (wrapped) => set(wrapped, key, data));
  });
  const publish = clean.findIndex((write) => write.keys.some((k) => isUserKey(k, key))) + 1;
  assert.equal(publish, setCommits(RACE_CHUNKS));
  assert.ok(clean.length > publish);
  for (let n = 1; n <= clean.length; n++) {
    const label = `vacuum before write ${n}`;
    await withKv(async (kv) => {
      await set(kv, key, old);
      let vacuumed: VacuumResult | undefined;
      const faulty = faultyKv(kv, {
        beforeWrite: async (at) => {
          if (at === n) vacuumed = await vacuum(kv, { olderThan: 0 });
        },
      });
      const outcome = await settle(set(faulty.kv, key, data));
      assert.ok(vacuumed !== undefined, `${label}: vacuum ran`);
      if (n === 1 || n > publish) {
        // No version of the write exists yet, or it is published: vacuum must not break it.
        assert.ok(outcome.ok, `${label}: ${outcome.ok || String(outcome.error)}`);
        assert.deepEqual(await readBytes(kv, key, PLAIN), data, label);
      } else {
        // The version exists but is unpublished: vacuum removes it, the write fails.
        assert.equal(vacuumed.versions, 1, `${label}: vacuum took the unpublished version`);
        assert.ok(!outcome.ok, `${label}: must fail`);
        assert.ok(outcome.error instanceof ConcurrentModificationError, String(outcome.error));
        assert.deepEqual(await readBytes(kv, key, PLAIN), old, label);
      }
      await assertOnlyLive(kv, key, `${label}: no orphan without another vacuum`);
      assert.deepEqual(
        await vacuum(kv, { olderThan: 0 }),
        { versions: 0, chunks: 0, skipped: 0 },
        label,
      );
    });
  }
});

Deno.test("vacuum race: free-running vacuum against a slow 40-chunk write", async () => {
  // Vacuum starts after a delay, or once some chunk atomics committed; the
  // stream keeps flowing (1 ms per chunk) while vacuum runs.
  const triggers = [
    { ms: 0 },
    { ms: 3 },
    { chunks: CHUNKS_PER_ATOMIC },
    { chunks: 2 * CHUNKS_PER_ATOMIC },
    { chunks: 3 * CHUNKS_PER_ATOMIC },
    { ms: 25 },
  ];
  const outcomes: string[] = [];
  for (const trigger of triggers) {
    const label = JSON.stringify(trigger);
    await withKv(async (kv) => {
      const key = ["race", "free"];
      const old = randomBytes(2 * PLAIN_CHUNK_SIZE + 1);
      await set(kv, key, old);
      const data = randomBytes(RACE_CHUNKS * PLAIN_CHUNK_SIZE);
      const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));
      const start = Promise.withResolvers<void>();
      if ("ms" in trigger) setTimeout(start.resolve, trigger.ms);
      const writing = settle(set(kv, key, slowStream(data, PLAIN_CHUNK_SIZE, tick), {
        onProgress: (bytes) => {
          if ("chunks" in trigger && bytes >= trigger.chunks * PLAIN_CHUNK_SIZE) start.resolve();
        },
      }));
      // A write that finishes first starts the vacuum too.
      void writing.then(() => start.resolve());
      await start.promise;
      const vacuuming = settle(vacuum(kv, { olderThan: 0 }));
      const [outcome, vacuumed] = await Promise.all([writing, vacuuming]);
      if (!vacuumed.ok) throw vacuumed.error;
      if (outcome.ok) {
        assert.deepEqual(await readBytes(kv, key, PLAIN), data, label);
      } else {
        assert.ok(outcome.error instanceof ConcurrentModificationError, String(outcome.error));
        assert.deepEqual(await readBytes(kv, key, PLAIN), old, label);
      }
      outcomes.push(outcome.ok ? "ok" : "conflict");
      await assertOnlyLive(kv, key, `${label}: no orphan, no record without chunks`);
      assert.deepEqual(
        await vacuum(kv, { olderThan: 0 }),
        { versions: 0, chunks: 0, skipped: 0 },
        label,
      );
    });
  }
  // Vacuum started mid-write at least once (the chunk-count triggers), and lost at least once.
  assert.ok(outcomes.includes("conflict"), outcomes.join());
  assert.ok(outcomes.includes("ok"), outcomes.join());
});

// ---------------------------------------------------------------------------
// rewrap: its one write can fail before or after applying.

for (const mode of ["before", "after"] as const) {
  kvTest(`faults: rewrap whose commit fails ${mode} applying`, async (kv) => {
    const oldKey = await generateKey({ kid: "old" });
    const newKey = await generateKey({ kid: "new" });
    const data = randomBytes(3 * SEALED_CHUNK_SIZE);
    await set(kv, ["doc"], data, { encryptionKey: oldKey });
    const faulty = faultyKv(kv, { failAt: 1, mode });
    const options = { encryptionKey: oldKey, add: newKey, remove: ["old"] };
    const outcome = await rewrap(faulty.kv, ["doc"], options).then(
      (result) => ({ ok: true as const, result }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    if (mode === "before") {
      // Nothing applied: the caller sees the failure and the old key still reads.
      assert.ok(!outcome.ok && outcome.error instanceof InjectedFault);
      assert.deepEqual((await get(kv, ["doc"], { encryptionKey: oldKey })).value, data);
    } else {
      // Applied, reply lost: rewrap finds its own record bytes and reports success.
      assert.ok(outcome.ok && outcome.result.ok, "a lost reply of an applied rewrap resolves ok");
      assert.deepEqual((await get(kv, ["doc"], { encryptionKey: newKey })).value, data);
    }
  });
}
