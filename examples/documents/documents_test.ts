/**
 * The documents app end to end: the key service and the app run as child
 * processes on 127.0.0.1, each with its own KV file, and every request is a
 * real fetch.
 *
 * @module
 */

import assert from "node:assert/strict";
import { getMeta, vacuum } from "../../mod.ts";
import { authed, Servers } from "./_servers_test_util.ts";

const FILE_TYPE = "application/pdf";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  // getRandomValues fills at most 65,536 bytes per call.
  for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
  return bytes;
}

interface Doc {
  id: string;
  name: string;
  size: number;
  type: string;
  owner: string;
  sharedWith: string[];
}

async function upload(
  servers: Servers,
  token: string,
  name: string,
  body: BodyInit,
  type = FILE_TYPE,
): Promise<Doc> {
  const response = await authed(
    token,
    `${servers.url}api/documents?name=${encodeURIComponent(name)}`,
    {
      method: "POST",
      headers: { "content-type": type },
      body,
    },
  );
  assert.equal(response.status, 201, await response.clone().text());
  return await response.json();
}

async function download(servers: Servers, token: string, id: string, headers: HeadersInit = {}) {
  return await authed(token, `${servers.url}api/documents/${id}`, { headers });
}

async function expectJsonError(response: Response, status: number): Promise<string> {
  assert.equal(response.status, status);
  assert.match(response.headers.get("content-type") ?? "", /application\/json/);
  const body = await response.json();
  assert.match(body.error, /^Cannot /);
  return body.error;
}

/** Every file of the app's store (the database and its WAL) as one byte array. */
async function storeBytes(path: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (const suffix of ["", "-wal", "-shm"]) {
    try {
      parts.push(await Deno.readFile(path + suffix));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0];
  outer: for (
    let i = haystack.indexOf(first!);
    i >= 0 && i <= haystack.length - needle.length;
    i = haystack.indexOf(first!, i + 1)
  ) {
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("documents app: the HTTP API against a real key service", async (t) => {
  const servers = await Servers.start({ maxUploadBytes: 1024 * 1024 });
  try {
    const alice = await servers.addUser("alice");
    const bob = await servers.addUser("bob");
    const carol = await servers.addUser("carol");
    const content = randomBytes(300_000);
    let doc!: Doc;

    await t.step("upload and download 0 B and 1 B", async () => {
      for (const size of [0, 1]) {
        const bytes = randomBytes(size);
        const created = await upload(servers, alice, `small-${size}.bin`, bytes, "");
        assert.equal(created.size, size);
        assert.equal(created.owner, "alice");
        assert.deepEqual(created.sharedWith, []);
        const response = await download(servers, alice, created.id);
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("content-length"), String(size));
        assert.deepEqual(await response.bytes(), bytes);
      }
    });

    await t.step("an upload keeps its name and type; the download is an attachment", async () => {
      doc = await upload(servers, alice, "report ü.pdf", content);
      assert.equal(doc.name, "report ü.pdf");
      assert.equal(doc.type, FILE_TYPE);
      assert.equal(doc.size, content.length);
      const response = await download(servers, alice, doc.id);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), FILE_TYPE);
      assert.equal(response.headers.get("x-content-type-options"), "nosniff");
      assert.match(
        response.headers.get("content-disposition")!,
        /^attachment; filename=.*filename\*=UTF-8''report%20%C3%BC\.pdf/,
      );
      assert.deepEqual(await response.bytes(), content);
      const list = await (await authed(alice, `${servers.url}api/documents`)).json() as Doc[];
      assert.ok(list.some((d) => d.id === doc.id && d.name === "report ü.pdf"));
    });

    await t.step("every Range case, 304 and If-Range", async () => {
      const size = content.length;
      const cases: [string, number, number, number][] = [
        ["bytes=0-0", 206, 0, 1],
        ["bytes=0-99", 206, 0, 100],
        ["bytes=65519-65521", 206, 65_519, 65_522],
        ["bytes=299990-", 206, 299_990, size],
        ["bytes=-10", 206, size - 10, size],
        ["bytes=-999999", 206, 0, size],
        ["bytes=100-999999", 206, 100, size],
      ];
      for (const [range, status, start, end] of cases) {
        const response = await download(servers, alice, doc.id, { range });
        assert.equal(response.status, status, range);
        assert.equal(response.headers.get("content-range"), `bytes ${start}-${end - 1}/${size}`);
        assert.deepEqual(await response.bytes(), content.subarray(start, end), range);
      }
      const past = await download(servers, alice, doc.id, { range: `bytes=${size}-` });
      assert.equal(past.status, 416);
      assert.equal(past.headers.get("content-range"), `bytes */${size}`);
      await past.body?.cancel();
      // Malformed or multiple ranges: the whole file, never a 500.
      for (
        const range of [
          "bytes=5-2",
          "bytes=a-b",
          "items=0-1",
          "bytes=0-1,5-6",
          "bytes=",
          "bytes=--1",
          "x".repeat(5000),
        ]
      ) {
        const response = await download(servers, alice, doc.id, { range });
        assert.equal(response.status, 200, range);
        assert.equal((await response.bytes()).length, size);
      }
      const etag = (await download(servers, alice, doc.id, { range: "bytes=0-0" })).headers.get(
        "etag",
      )!;
      assert.match(etag, /^"/);
      const notModified = await download(servers, alice, doc.id, { "if-none-match": etag });
      assert.equal(notModified.status, 304);
      assert.equal(await notModified.text(), "");
      const resumed = await download(servers, alice, doc.id, {
        range: "bytes=10-19",
        "if-range": etag,
      });
      assert.equal(resumed.status, 206);
      assert.deepEqual(await resumed.bytes(), content.subarray(10, 20));
      const stale = await download(servers, alice, doc.id, {
        range: "bytes=10-19",
        "if-range": '"old"',
      });
      assert.equal(stale.status, 200);
      assert.equal((await stale.bytes()).length, size);
      const head = await authed(alice, `${servers.url}api/documents/${doc.id}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(size));
    });

    await t.step("share, download as the reader, never-shared user gets 404", async () => {
      const before = await (await download(servers, alice, doc.id, { range: "bytes=0-0" })).headers
        .get("etag");
      const shared = await authed(alice, `${servers.url}api/documents/${doc.id}/shares`, {
        method: "POST",
        body: JSON.stringify({ user: "bob" }),
      });
      assert.equal(shared.status, 204);
      const asBob = await download(servers, bob, doc.id);
      assert.equal(asBob.status, 200);
      assert.deepEqual(await asBob.bytes(), content);
      // A rewrap: the content and its ETag are unchanged.
      assert.equal(
        (await download(servers, bob, doc.id, { range: "bytes=0-0" })).headers.get("etag"),
        before,
      );
      const bobsList = await (await authed(bob, `${servers.url}api/documents`)).json() as Doc[];
      assert.deepEqual(bobsList.map((d) => d.id), [doc.id]);
      assert.deepEqual(bobsList[0]!.sharedWith, ["bob"]);
      // Carol was never given it: 404 with no name, size or bytes.
      const asCarol = await download(servers, carol, doc.id);
      const error = await expectJsonError(asCarol, 404);
      assert.ok(!error.includes("report") && !error.includes(String(content.length)));
      assert.equal(asCarol.headers.get("content-length") === String(content.length), false);
      assert.deepEqual(await (await authed(carol, `${servers.url}api/documents`)).json(), []);
      const info = await authed(bob, `${servers.url}api/documents/${doc.id}/info`);
      assert.equal(info.status, 200);
      assert.equal((await info.json()).name, "report ü.pdf");
      await expectJsonError(await authed(carol, `${servers.url}api/documents/${doc.id}/info`), 404);
      const head = await authed(carol, `${servers.url}api/documents/${doc.id}`, { method: "HEAD" });
      assert.equal(head.status, 404);
      // Sharing again, or with the owner: 204. An unknown user: 404.
      for (const user of ["bob", "alice"]) {
        const again = await authed(alice, `${servers.url}api/documents/${doc.id}/shares`, {
          method: "POST",
          body: JSON.stringify({ user }),
        });
        assert.equal(again.status, 204);
      }
      const unknown = await authed(alice, `${servers.url}api/documents/${doc.id}/shares`, {
        method: "POST",
        body: JSON.stringify({ user: "mallory" }),
      });
      await expectJsonError(unknown, 404);
    });

    await t.step("owner-only actions by a reader: 403, nothing changed", async () => {
      const put = await authed(bob, `${servers.url}api/documents/${doc.id}`, {
        method: "PUT",
        body: "x",
      });
      await expectJsonError(put, 403);
      const del = await authed(bob, `${servers.url}api/documents/${doc.id}`, { method: "DELETE" });
      await expectJsonError(del, 403);
      const share = await authed(bob, `${servers.url}api/documents/${doc.id}/shares`, {
        method: "POST",
        body: JSON.stringify({ user: "carol" }),
      });
      await expectJsonError(share, 403);
      assert.deepEqual(await (await download(servers, bob, doc.id)).bytes(), content);
    });

    await t.step("replace: new content and ETag, readers kept", async () => {
      const oldTag = (await download(servers, alice, doc.id, { range: "bytes=0-0" })).headers.get(
        "etag",
      );
      const next = randomBytes(150_000);
      const response = await authed(alice, `${servers.url}api/documents/${doc.id}?name=v2.txt`, {
        method: "PUT",
        headers: { "content-type": "text/plain" },
        body: next,
      });
      assert.equal(response.status, 200);
      const replaced = await response.json() as Doc;
      assert.equal(replaced.name, "v2.txt");
      assert.equal(replaced.type, "text/plain");
      assert.equal(replaced.size, next.length);
      assert.deepEqual(replaced.sharedWith, ["bob"]);
      const asBob = await download(servers, bob, doc.id);
      assert.equal(asBob.headers.get("content-type"), "text/plain");
      assert.notEqual(asBob.headers.get("etag"), oldTag);
      assert.deepEqual(await asBob.bytes(), next);
      // A stale If-Range gets the new version whole.
      const resumed = await download(servers, bob, doc.id, {
        range: "bytes=0-9",
        "if-range": oldTag!,
      });
      assert.equal(resumed.status, 200);
      assert.deepEqual(await resumed.bytes(), next);
      doc = replaced;
    });

    await t.step(
      "over MAX_UPLOAD_BYTES: 413 and nothing stored; a too-large PUT keeps the old",
      async () => {
        const big = randomBytes(1024 * 1024 + 1);
        const declared = await authed(alice, `${servers.url}api/documents?name=big.bin`, {
          method: "POST",
          body: big,
        });
        await expectJsonError(declared, 413);
        // Streamed without a length: refused as it passes the limit.
        const streamed = await authed(alice, `${servers.url}api/documents?name=big.bin`, {
          method: "POST",
          body: new Blob([big]).stream(),
        });
        await expectJsonError(streamed, 413);
        const put = await authed(alice, `${servers.url}api/documents/${doc.id}`, {
          method: "PUT",
          body: new Blob([big]).stream(),
        });
        await expectJsonError(put, 413);
        const list = await (await authed(alice, `${servers.url}api/documents`)).json() as Doc[];
        assert.ok(!list.some((d) => d.name === "big.bin"));
        const current = await download(servers, bob, doc.id);
        assert.equal((await current.bytes()).length, doc.size);
      },
    );

    await t.step(
      "unshare: re-encrypted (new ETag), the reader gets 404, the owner still reads",
      async () => {
        const before = (await download(servers, alice, doc.id)).headers.get("etag");
        const response = await authed(alice, `${servers.url}api/documents/${doc.id}/shares/bob`, {
          method: "DELETE",
        });
        assert.equal(response.status, 204);
        await expectJsonError(await download(servers, bob, doc.id), 404);
        const asAlice = await download(servers, alice, doc.id);
        assert.notEqual(asAlice.headers.get("etag"), before);
        assert.equal((await asAlice.bytes()).length, doc.size);
        assert.deepEqual(await (await authed(bob, `${servers.url}api/documents`)).json(), []);
        const again = await authed(alice, `${servers.url}api/documents/${doc.id}/shares/bob`, {
          method: "DELETE",
        });
        assert.equal(again.status, 204);
      },
    );

    await t.step("past the recipient limit: 409 with a JSON error", async () => {
      const small = await upload(servers, alice, "crowded.txt", "hi", "text/plain");
      const names = Array.from({ length: 15 }, (_, i) => `reader${i}`);
      // One at a time: each is its own process writing the app's SQLite file.
      for (const name of [...names, "one-too-many"]) await servers.addUser(name);
      for (const name of names) {
        const response = await authed(alice, `${servers.url}api/documents/${small.id}/shares`, {
          method: "POST",
          body: JSON.stringify({ user: name }),
        });
        assert.equal(response.status, 204, name);
      }
      const over = await authed(alice, `${servers.url}api/documents/${small.id}/shares`, {
        method: "POST",
        body: JSON.stringify({ user: "one-too-many" }),
      });
      await expectJsonError(over, 409);
    });

    await t.step("bogus tokens, bad ids and bodies: 4xx, never a 500", async () => {
      const requests: [string, RequestInit][] = [
        ["api/documents", {}],
        ["api/documents", { headers: { authorization: "Bearer nope" } }],
        ["api/documents", { headers: { authorization: "Basic YWxpY2U6eA==" } }],
        ["api/documents", { headers: { authorization: "Bearer " } }],
        ["api/documents", { headers: { authorization: `Bearer ${alice}x` } }],
        ["api/documents", { headers: { cookie: "documents_session=forged" } }],
      ];
      for (const [path, init] of requests) {
        const response = await fetch(servers.url + path, init);
        await expectJsonError(response, 401);
      }
      const bad: [string, RequestInit, number][] = [
        ["api/documents/%ZZ", {}, 400],
        ["api/documents/not-an-id", {}, 404],
        [`api/documents/${"A".repeat(22)}`, {}, 404],
        ["api/documents?name=", { method: "POST", body: "x" }, 400],
        ["api/documents?name=a%2Fb", { method: "POST", body: "x" }, 400],
        [`api/documents/${doc.id}/shares`, { method: "POST", body: "{" }, 400],
        [`api/documents/${doc.id}/shares`, { method: "POST", body: "[]" }, 400],
        [`api/documents/${doc.id}/shares`, { method: "POST", body: '{"user":1}' }, 400],
        [`api/documents/${doc.id}/nothing`, {}, 405],
        ["api/other", {}, 404],
      ];
      for (const [path, init, status] of bad) {
        const response = await authed(alice, servers.url + path, init);
        assert.equal(response.status, status, path);
        await response.body?.cancel();
      }
    });

    await t.step("web session: HttpOnly SameSite=Strict cookie, CSRF checked", async () => {
      const wrong = await fetch(`${servers.url}session`, {
        method: "POST",
        body: JSON.stringify({ name: "alice", token: bob }),
      });
      await expectJsonError(wrong, 401);
      const signIn = await fetch(`${servers.url}session`, {
        method: "POST",
        body: JSON.stringify({ name: "alice", token: alice }),
      });
      assert.equal(signIn.status, 200);
      const { csrf } = await signIn.json();
      const setCookie = signIn.headers.get("set-cookie")!;
      assert.match(setCookie, /HttpOnly/);
      assert.match(setCookie, /SameSite=Strict/);
      const cookie = setCookie.split(";")[0]!;
      const list = await fetch(`${servers.url}api/documents`, { headers: { cookie } });
      assert.equal(list.status, 200);
      await list.body?.cancel();
      const noToken = await fetch(`${servers.url}api/documents?name=x.txt`, {
        method: "POST",
        headers: { cookie },
        body: "x",
      });
      await expectJsonError(noToken, 403);
      const crossSite = await fetch(`${servers.url}api/documents?name=x.txt`, {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf, origin: "https://evil.example" },
        body: "x",
      });
      await expectJsonError(crossSite, 403);
      const ok = await fetch(`${servers.url}api/documents?name=x.txt`, {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf, origin: new URL(servers.url).origin },
        body: "x",
      });
      assert.equal(ok.status, 201);
      await ok.body?.cancel();
      const page = await fetch(servers.url);
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-security-policy")!, /script-src 'self'/);
      assert.match(await page.text(), /<title>Documents<\/title>/);
    });

    await t.step("delete: 204, then 404 for everyone", async () => {
      const victim = await upload(servers, alice, "gone.bin", randomBytes(200_000));
      await authed(alice, `${servers.url}api/documents/${victim.id}/shares`, {
        method: "POST",
        body: JSON.stringify({ user: "bob" }),
      });
      const response = await authed(alice, `${servers.url}api/documents/${victim.id}`, {
        method: "DELETE",
      });
      assert.equal(response.status, 204);
      await expectJsonError(await download(servers, alice, victim.id), 404);
      await expectJsonError(await download(servers, bob, victim.id), 404);
    });

    await t.step("a client that disconnects mid-upload: previous version intact", async () => {
      const before = await (await download(servers, alice, doc.id)).bytes();
      for (const method of ["PUT", "POST"]) {
        const path = method === "PUT" ? `api/documents/${doc.id}` : "api/documents?name=cut.bin";
        const controller = new AbortController();
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(stream) {
            // 300 KiB, then the client goes away.
            if (sent >= 300 * 1024) {
              controller.abort();
              return new Promise(() => {});
            }
            sent += 64 * 1024;
            stream.enqueue(randomBytes(64 * 1024));
          },
        });
        await assert.rejects(authed(alice, servers.url + path, {
          method,
          body,
          signal: controller.signal,
        }));
      }
      // Let the app notice and clean up.
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.deepEqual(await (await download(servers, alice, doc.id)).bytes(), before);
      const list = await (await authed(alice, `${servers.url}api/documents`)).json() as Doc[];
      assert.ok(!list.some((d) => d.name === "cut.bin"));
    });

    await t.step(
      "key service stopped: 503 with nothing lost; started again: all reads",
      async () => {
        const before = await (await download(servers, alice, doc.id)).bytes();
        await servers.stopKeys();
        await expectJsonError(await download(servers, alice, doc.id), 503);
        const put = await authed(alice, `${servers.url}api/documents/${doc.id}`, {
          method: "PUT",
          body: "new",
        });
        await expectJsonError(put, 503);
        const post = await authed(alice, `${servers.url}api/documents?name=down.txt`, {
          method: "POST",
          body: "new",
        });
        await expectJsonError(post, 503);
        const share = await authed(alice, `${servers.url}api/documents/${doc.id}/shares`, {
          method: "POST",
          body: JSON.stringify({ user: "carol" }),
        });
        await expectJsonError(share, 503);
        // The index does not need keys: listing still works.
        assert.equal((await authed(alice, `${servers.url}api/documents`)).status, 200);
        await servers.startKeys();
        assert.deepEqual(await (await download(servers, alice, doc.id)).bytes(), before);
        const list = await (await authed(alice, `${servers.url}api/documents`)).json() as Doc[];
        assert.ok(!list.some((d) => d.name === "down.txt"));
        await expectJsonError(await download(servers, carol, doc.id), 404);
      },
    );

    await t.step("the key service audits every call and never returns a key", async () => {
      const audit = await fetch(`${servers.keys.url}v1/audit?user=bob`, {
        headers: { authorization: `Bearer ${servers.keyToken}` },
      });
      const { entries } = await audit.json();
      assert.ok(
        entries.some((e: { operation: string; outcome: string }) =>
          e.operation === "wrap" && e.outcome === "ok"
        ),
      );
      assert.ok(
        entries.some((e: { operation: string; outcome: string }) =>
          e.operation === "unwrap" && e.outcome === "ok"
        ),
      );
      const denied = await fetch(`${servers.keys.url}v1/keys/bob/unwrap`, {
        method: "POST",
        headers: { authorization: "Bearer wrong-token-wrong-token" },
        body: "{}",
      });
      assert.equal(denied.status, 401);
      await denied.body?.cancel();
      const after = await (await fetch(`${servers.keys.url}v1/audit?user=bob`, {
        headers: { authorization: `Bearer ${servers.keyToken}` },
      })).json();
      assert.equal(after.entries.at(-1).outcome, "unauthorized");
    });

    await t.step(
      "the app's KV file holds no plaintext and no user key; vacuum finds no orphan",
      async () => {
        const marker = new TextEncoder().encode("PLAINTEXT-MARKER-".repeat(8));
        const secretDoc = await upload(
          servers,
          alice,
          "marker.txt",
          new Blob([marker, randomBytes(100_000), marker]),
        );
        assert.ok(secretDoc.size > 0);
        // No request of this whole test ended in an internal error.
        assert.doesNotMatch(
          servers.app.output(),
          /internal error|documents: (GET|HEAD|POST|PUT|DELETE) /,
        );
        await servers.stopApp();
        await servers.stopKeys();
        const keysKv = await Deno.openKv(servers.keysDb);
        const userKeys: Uint8Array[] = [];
        for await (const entry of keysKv.list<Uint8Array>({ prefix: ["user-keys"] })) {
          userKeys.push(entry.value);
        }
        keysKv.close();
        assert.ok(userKeys.length >= 2);
        const stored = await storeBytes(servers.appDb);
        assert.ok(stored.length > 100_000);
        assert.ok(!contains(stored, marker), "plaintext found in the app's KV");
        assert.ok(!contains(stored, content.subarray(1000, 1064)), "document bytes found");
        for (const key of userKeys) {
          assert.ok(!contains(stored, key), "a user key found in the app's KV");
        }
        assert.ok(
          !contains(stored, new TextEncoder().encode(alice)),
          "an API token found in the app's KV",
        );
        const kv = await Deno.openKv(servers.appDb);
        try {
          await vacuum(kv, { olderThan: 0 });
          // Every blob has its index entry, and every stored chunk and version
          // entry belongs to a live blob's current version.
          const docs = new Set<string>();
          for await (const entry of kv.list({ prefix: ["docs"] })) {
            docs.add(entry.key[1] as string);
          }
          const versions = new Set<string>();
          for await (const entry of kv.list({ prefix: ["blobs"] })) {
            assert.ok(docs.has(entry.key[1] as string), "a blob without an index entry");
            versions.add((await getMeta(kv, entry.key)).value!.id);
          }
          assert.equal(versions.size, docs.size);
          let chunks = 0;
          for await (const entry of kv.list({ prefix: ["__kvcrypt__"] })) {
            assert.ok(
              versions.has(hex(entry.key[2] as Uint8Array)),
              `orphan ${String(entry.key[1])}`,
            );
            chunks++;
          }
          assert.ok(chunks > 0);
        } finally {
          kv.close();
        }
      },
    );
  } finally {
    await servers.stop();
  }
});
