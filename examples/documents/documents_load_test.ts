/**
 * The documents app under load: a 200 MiB document streamed both ways with
 * the app's memory bounded, and 20 concurrent clients.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { authed, Servers } from "./_servers_test_util.ts";
import { streamUpload } from "./_upload.ts";

const MIB = 1024 * 1024;
/** The large document: big enough that buffering it would show in the app's RSS. */
const LARGE = 200 * MIB;
/**
 * What the app's peak RSS may grow by while it streams LARGE both ways:
 * below LARGE, so the document was never held whole (a buffered body adds
 * all of it on top of the runtime's garbage). Measured: a plateau of about
 * +130 MiB for 100 to 600 MiB uploads (uncollected buffers and the
 * allocator's retained pages; bench:scaling finds the same for raw KV), up
 * to +171 MiB while the other test files run alongside.
 */
const RSS_GROWTH_MAX = 185 * MIB;
const PIECE = 64 * 1024;

/** A stream of `size` pseudo-random bytes, hashed as it is produced. */
function randomStream(
  size: number,
  hash: ReturnType<typeof createHash>,
): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent === size) return controller.close();
      const piece = crypto.getRandomValues(new Uint8Array(Math.min(PIECE, size - sent)));
      hash.update(piece);
      sent += piece.length;
      controller.enqueue(piece);
    },
  }, { highWaterMark: 0 });
}

async function hashBody(response: Response): Promise<{ digest: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const piece of response.body!) {
    hash.update(piece);
    bytes += piece.length;
  }
  return { digest: hash.digest("hex"), bytes };
}

Deno.test("documents app: 200 MiB streamed both ways with bounded memory; 20 concurrent clients", async (t) => {
  const servers = await Servers.start();
  try {
    const token = await servers.addUser("alice");

    await t.step("200 MiB up and down, SHA-256 equal, app RSS bounded", async () => {
      // A small round trip first so the baseline includes a warmed-up app.
      const warm = await authed(token, `${servers.url}api/documents?name=warm.bin`, {
        method: "POST",
        body: new Uint8Array(MIB),
      });
      assert.equal(warm.status, 201);
      const warmDoc = await warm.json();
      await (await authed(token, `${servers.url}api/documents/${warmDoc.id}`)).bytes();
      const baseline = await servers.appPeakRss();

      const sent = createHash("sha256");
      let started = performance.now();
      // Streamed with a Content-Length through node:http, as the CLI does
      // (see _upload.ts for why not fetch).
      const created = await streamUpload({
        url: new URL(`${servers.url}api/documents?name=large.bin`),
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
        body: randomStream(LARGE, sent),
        length: LARGE,
      });
      assert.equal(created.status, 201, created.text);
      const doc = JSON.parse(created.text);
      assert.equal(doc.size, LARGE);
      const uploadMs = performance.now() - started;
      const afterUpload = await servers.appPeakRss();
      started = performance.now();
      const response = await authed(token, `${servers.url}api/documents/${doc.id}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-length"), String(LARGE));
      const received = await hashBody(response);
      const downloadMs = performance.now() - started;
      assert.equal(received.bytes, LARGE);
      assert.equal(received.digest, sent.digest("hex"));

      const peak = await servers.appPeakRss();
      console.log(
        `200 MiB: up ${(LARGE / MIB / (uploadMs / 1000)).toFixed(0)} MiB/s, down ${
          (LARGE / MIB / (downloadMs / 1000)).toFixed(0)
        } MiB/s; app peak RSS ${(baseline / MIB).toFixed(0)} MiB before, ${
          (afterUpload / MIB).toFixed(0)
        } after upload, ${(peak / MIB).toFixed(0)} MiB after`,
      );
      assert.ok(
        peak - baseline < RSS_GROWTH_MAX,
        `the app's peak RSS grew by ${((peak - baseline) / MIB).toFixed(0)} MiB`,
      );
    });

    await t.step("20 concurrent clients upload and download, no corruption", async () => {
      const users = ["u0", "u1", "u2", "u3", "u4"];
      const tokens: string[] = [];
      for (const user of users) tokens.push(await servers.addUser(user));
      const clients = Array.from({ length: 20 }, async (_, i) => {
        const userToken = tokens[i % tokens.length]!;
        // Sizes around the chunk size and several chunks, all different.
        const size = 65_520 * (1 + (i % 5)) + i * 1_013;
        const sent = createHash("sha256");
        const created = await authed(userToken, `${servers.url}api/documents?name=c${i}.bin`, {
          method: "POST",
          body: randomStream(size, sent),
        });
        assert.equal(created.status, 201, await created.clone().text());
        const doc = await created.json();
        const digest = sent.digest("hex");
        for (let round = 0; round < 2; round++) {
          const response = await authed(userToken, `${servers.url}api/documents/${doc.id}`);
          assert.equal(response.status, 200);
          const received = await hashBody(response);
          assert.equal(received.bytes, size);
          assert.equal(received.digest, digest, `client ${i} read other bytes`);
        }
        return doc.id as string;
      });
      const ids = await Promise.all(clients);
      assert.equal(new Set(ids).size, 20);
      for (let i = 0; i < users.length; i++) {
        const list = await (await authed(tokens[i]!, `${servers.url}api/documents`)).json();
        assert.equal(list.length, 4);
      }
    });
  } finally {
    await servers.stop();
  }
});
