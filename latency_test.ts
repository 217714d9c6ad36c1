import assert from "node:assert/strict";
import { LatencyKv } from "./_testing/latency_kv.ts";
import {
  CHUNKS_IN_RECORD_COMMIT,
  KV_GET_MANY_MAX,
  READ_BATCH_CHUNKS,
  SEALED_CHUNK_SIZE,
} from "./_limits.ts";
import { generateKey, get, getAsResponse, getAsStream, getMeta, set } from "./mod.ts";
import { kvTest } from "./_testing/util.ts";

/** Simulated round trip: long enough that calls issued together overlap. */
const RTT_MS = 5;
/**
 * Round trip for writes: sealing 16 MiB takes tens of milliseconds of CPU, so
 * a shorter RTT would let unrelated atomics finish before later ones start
 * and count as a dependency.
 */
const WRITE_RTT_MS = 100;
const MIB = 1024 * 1024;

const formats = [
  { name: "plain", options: {} },
  { name: "AES-256", options: { encryptionKey: await generateKey() } },
] as const;

for (const { name, options } of formats) {
  kvTest(`get() of an inline ${name} blob is one call`, async (raw) => {
    const latency = new LatencyKv(raw, RTT_MS);
    await set(raw, ["small"], new Uint8Array(1024), options);
    const entry = await get(latency.kv, ["small"], options);
    assert.equal(entry.value?.length, 1024);
    assert.deepEqual(latency.calls.map((call) => call.op), ["get"]);
  });

  kvTest(`set() of an inline ${name} blob is two sequential calls at most`, async (raw) => {
    const latency = new LatencyKv(raw, RTT_MS);
    await set(latency.kv, ["small"], new Uint8Array(1024), options);
    assert.ok(latency.depth <= 2, `depth ${latency.depth}`);
    assert.equal(latency.calls.length, 2);
  });

  kvTest(
    `set() of a new ${name} blob of ${CHUNKS_IN_RECORD_COMMIT} chunks is two sequential calls`,
    async (raw) => {
      const latency = new LatencyKv(raw, RTT_MS);
      const size = CHUNKS_IN_RECORD_COMMIT * SEALED_CHUNK_SIZE;
      await set(latency.kv, ["medium"], new Uint8Array(size).fill(7), options);
      // The record read, then one atomic with the version entry, the chunks and the record.
      assert.deepEqual(latency.calls.map((call) => call.op), ["get", "commit"]);
      assert.equal(latency.depth, 2);
      assert.equal((await getMeta(raw, ["medium"], options)).value?.size, size);
    },
  );

  kvTest(`set() over a chunked ${name} blob with 64 KiB is three sequential calls`, async (raw) => {
    await set(raw, ["medium"], new Uint8Array(5 * SEALED_CHUNK_SIZE), options);
    const latency = new LatencyKv(raw, RTT_MS);
    await set(latency.kv, ["medium"], new Uint8Array(64 * 1024).fill(7), options);
    // The record read, the one commit (tombstoning the old version), its deletion.
    assert.deepEqual(latency.calls.map((call) => call.op), ["get", "commit", "commit"]);
    assert.equal(latency.depth, 3);
    assert.equal((await get(raw, ["medium"], options)).value?.length, 64 * 1024);
  });

  for (const chunks of [CHUNKS_IN_RECORD_COMMIT + 1, 16]) {
    kvTest(
      `set() of a ${name} blob of ${chunks} chunks: a chunk atomic, then the record commit`,
      async (raw) => {
        const latency = new LatencyKv(raw, WRITE_RTT_MS);
        const size = chunks * SEALED_CHUNK_SIZE;
        await set(latency.kv, ["medium"], new Uint8Array(size), options);
        // The first 12 chunks with the version entry; the rest ride with the record.
        assert.deepEqual(latency.calls.map((call) => call.op).sort(), ["commit", "commit", "get"]);
        assert.equal(latency.depth, 2, "the record read overlaps the chunk atomic");
        assert.equal((await getMeta(raw, ["medium"], options)).value?.chunks, chunks);
      },
    );
  }

  kvTest(
    `get() of a ${name} blob of up to ${
      KV_GET_MANY_MAX - 2
    } chunks this handle wrote is one getMany: record, chunks and the probe past the end`,
    async (raw) => {
      const latency = new LatencyKv(raw, RTT_MS);
      for (const chunks of [1, KV_GET_MANY_MAX - 2, KV_GET_MANY_MAX - 1]) {
        const size = chunks * SEALED_CHUNK_SIZE;
        await set(latency.kv, ["doc", chunks], new Uint8Array(size).fill(chunks), options);
        latency.reset();
        assert.equal((await get(latency.kv, ["doc", chunks], options)).value?.length, size);
        const ops = latency.calls.map((call) => call.op).sort();
        // One more chunk and the probe would not fit one getMany: the record and a list page.
        const expected = chunks <= KV_GET_MANY_MAX - 2 ? ["getMany"] : ["get", "list-page"];
        assert.deepEqual(ops, expected, `${chunks} chunks`);
        assert.equal(latency.depth, 1, `${chunks} chunks`);
        latency.reset();
        await get(latency.kv, ["doc", chunks], { ...options, consistency: "eventual" });
        // An eventual read keeps its chunk reads strong, so they cannot share the record's call.
        assert.deepEqual(latency.calls.map((call) => call.op).sort(), ["get", "list-page"]);
      }
    },
  );

  kvTest(
    `get() of a ${name} blob of two batches this handle wrote is one wave; a stream of it asks for one batch ahead`,
    async (raw) => {
      const latency = new LatencyKv(raw, RTT_MS);
      const size = (READ_BATCH_CHUNKS + 1) * SEALED_CHUNK_SIZE;
      await set(latency.kv, ["two"], new Uint8Array(size).fill(2), options);
      latency.reset();
      assert.equal((await get(latency.kv, ["two"], options)).value?.length, size);
      // The record and both list pages of the hinted version, together.
      assert.deepEqual(latency.calls.map((call) => call.op).sort(), [
        "get",
        "list-page",
        "list-page",
      ]);
      assert.equal(latency.depth, 1);
      latency.reset();
      await new Response(await getAsStream(latency.kv, ["two"], options)).arrayBuffer();
      // A stream keeps its read-ahead bounded: only the first page goes with the record.
      assert.deepEqual(latency.calls.map((call) => call.op).sort(), [
        "get",
        "list-page",
        "list-page",
      ]);
      assert.equal(latency.depth, 2);
    },
  );

  kvTest(
    `get() of a ${name} blob of ${CHUNKS_IN_RECORD_COMMIT} chunks is one wave when this handle wrote it, two when it has not seen it`,
    async (raw) => {
      const latency = new LatencyKv(raw, RTT_MS);
      const size = CHUNKS_IN_RECORD_COMMIT * SEALED_CHUNK_SIZE;
      await set(latency.kv, ["medium"], new Uint8Array(size).fill(7), options);
      latency.reset();
      assert.equal((await get(latency.kv, ["medium"], options)).value?.length, size);
      // The record and the hinted version's chunks (one list page) together.
      assert.deepEqual(latency.calls.map((call) => call.op).sort(), ["get", "list-page"]);
      assert.equal(latency.depth, 1);
      latency.reset();
      const range = { start: 5 * SEALED_CHUNK_SIZE, end: 6 * SEALED_CHUNK_SIZE };
      await new Response(await getAsStream(latency.kv, ["medium"], { ...options, range }))
        .arrayBuffer();
      // A ranged read waits for the record: the hinted first page holds chunks it does not use.
      assert.deepEqual(latency.calls.map((call) => call.op), ["get", "list-page"]);
      assert.equal(latency.depth, 2);
      const cold = new LatencyKv(raw, RTT_MS);
      assert.equal((await get(cold.kv, ["medium"], options)).value?.length, size);
      assert.deepEqual(cold.calls.map((call) => call.op), ["get", "list-page"]);
      assert.equal(cold.depth, 2, "a handle that never saw the blob reads the record first");
      cold.reset();
      await get(cold.kv, ["medium"], options);
      assert.equal(cold.depth, 1, "and one wave from its second read on");
    },
  );

  kvTest(`get() of a 16 MiB ${name} blob is two waves: record, then all batches`, async (raw) => {
    await set(raw, ["big"], new Uint8Array(16 * MIB).fill(1), options);
    // The write RTT: on a loaded machine, opening the header can take longer
    // than a short RTT, and the prefetched first page would end before the
    // others start, counting as a wave of its own.
    const latency = new LatencyKv(raw, WRITE_RTT_MS);
    const entry = await get(latency.kv, ["big"], options);
    assert.equal(entry.value?.length, 16 * MIB);
    assert.equal(latency.depth, 2);
    // One list page per 16 chunks, none fetched twice (the encrypted read
    // starts its first page while it authenticates the header, and uses it).
    const { chunks } = (await getMeta(raw, ["big"], options)).value!;
    assert.equal(latency.calls.length, 1 + Math.ceil(chunks / READ_BATCH_CHUNKS));
  });

  kvTest(`set() of a 16 MiB ${name} blob pays at most 4 sequential calls`, async (raw) => {
    const latency = new LatencyKv(raw, WRITE_RTT_MS);
    await set(latency.kv, ["big"], new Uint8Array(16 * MIB), options);
    // first chunk atomic (record read alongside), one wave of the rest, the record commit
    assert.ok(latency.depth <= 4, `depth ${latency.depth}`);
  });

  kvTest(
    `getAsStream() of a 16 MiB ${name} blob delivers its first byte after two calls`,
    async (raw) => {
      await set(raw, ["big"], new Uint8Array(16 * MIB), options);
      const latency = new LatencyKv(raw, RTT_MS);
      const reader = (await getAsStream(latency.kv, ["big"], options))!.getReader();
      const first = await reader.read();
      assert.ok(!first.done && first.value.length > 0);
      const before = latency.calls.filter((call) => call.end <= performance.now());
      assert.ok(Math.max(...before.map((call) => call.depth)) <= 2);
      await reader.cancel();
    },
  );
}

kvTest(
  "getMeta() and a ranged read of an encrypted blob fetch no chunk they do not use",
  async (raw) => {
    const { options } = formats[1];
    await set(raw, ["big"], new Uint8Array(2 * MIB), options);
    const latency = new LatencyKv(raw, 0);
    await getMeta(latency.kv, ["big"], options);
    assert.deepEqual(latency.calls.map((call) => call.op), ["get"]);
    latency.reset();
    const tail = await getAsStream(latency.kv, ["big"], { ...options, range: { start: MIB } });
    await new Response(tail).arrayBuffer();
    // The record, then the batches from chunk 16 on: nothing from chunk 0.
    assert.deepEqual(latency.calls.map((call) => call.op), ["get", "list-page", "list-page"]);
  },
);

kvTest("getAsResponse() fetches chunks only for a body it sends", async (raw) => {
  const { options } = formats[1];
  await set(raw, ["big"], new Uint8Array(2 * MIB), options);
  const etag = (await getAsResponse(raw, ["big"], options)).headers.get("etag")!;
  const latency = new LatencyKv(raw, 0);
  for (const init of [{ method: "HEAD" }, { headers: { "if-none-match": etag } }]) {
    latency.reset();
    const response = await getAsResponse(latency.kv, ["big"], {
      ...options,
      request: new Request("http://localhost/big", init),
    });
    await response.body?.cancel();
    assert.deepEqual(latency.calls.map((call) => call.op), ["get"], JSON.stringify(init));
  }
});
