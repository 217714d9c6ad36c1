/**
 * Tests of `getAsResponse` (README, "HTTP"): status codes, headers, the
 * Range table over chunk boundaries, validators, Content-Disposition
 * encoding, and failures that must reject the call or error the body.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ConcurrentModificationError,
  CorruptBlobError,
  getAsResponse,
  getMeta,
  rewrap,
  set,
} from "./blob.ts";
import { fromHex } from "./_bytes.ts";
import { DecryptionError } from "./crypto.ts";
import { generateKey } from "./keys.ts";
import { chunkKey } from "./_kv_keys.ts";
import { encodePlainRecord } from "./_kvp1.ts";
import { PLAIN_CHUNK_SIZE, SEALED_CHUNK_SIZE } from "./_limits.ts";
import {
  contentDisposition,
  contentType,
  isPassiveType,
  parseEntityTags,
  parseRange,
  SANDBOX_POLICY,
} from "./_response.ts";
import { assertBytes, assertRejects, collect, kvTest, randomBytes } from "./_testing/util.ts";
import type { ResponseOptions } from "./_types.ts";

// ---------------------------------------------------------------------------
// Helpers.

const URL_ = "http://localhost/blob";
const KEY = ["files", "blob"];
const SIZE = 200_000; // Four chunks, plain or sealed.
const MODIFIED = Date.UTC(2024, 4, 6, 7, 8, 9, 500); // With milliseconds, which HTTP drops.
const MODIFIED_HTTP = "Mon, 06 May 2024 07:08:09 GMT";

/** A request for the blob with the given header fields. */
function request(headers: Record<string, string> = {}, method = "GET"): Request {
  return new Request(URL_, { method, headers });
}

/** Stores a File of `size` random bytes and returns its bytes and strong ETag. */
async function storeFile(
  kv: Deno.Kv,
  options: { size?: number; name?: string; encryptionKey?: JsonWebKey } = {},
): Promise<{ bytes: Uint8Array<ArrayBuffer>; etag: string }> {
  const bytes = randomBytes(options.size ?? SIZE);
  const file = new File([bytes], options.name ?? "photo.png", {
    type: "image/png",
    lastModified: MODIFIED,
  });
  const keyOption = options.encryptionKey === undefined
    ? {}
    : { encryptionKey: options.encryptionKey };
  await set(kv, KEY, file, keyOption);
  const meta = (await getMeta(kv, KEY, keyOption)).value!;
  return { bytes, etag: `"${meta.id}"` };
}

/** The response's headers as a plain object (names lower-case). */
function headersOf(response: Response): Record<string, string> {
  return Object.fromEntries(response.headers);
}

/** The bytes of a blob version id given as hex. */
function idOf(etag: string): Uint8Array {
  return fromHex(etag.slice(1, -1));
}

// ---------------------------------------------------------------------------
// 200, HEAD, 404.

for (const encrypted of [false, true]) {
  kvTest(
    `getAsResponse() answers 200 with the whole ${
      encrypted ? "encrypted" : "plain"
    } File and its headers`,
    async (kv) => {
      const encryptionKey = encrypted ? await generateKey() : undefined;
      const options = encryptionKey === undefined ? {} : { encryptionKey };
      const { bytes, etag } = await storeFile(kv, options);
      const response = await getAsResponse(kv, KEY, options);
      assert.equal(response.status, 200);
      assert.deepEqual(headersOf(response), {
        "accept-ranges": "bytes",
        "content-disposition": `attachment; filename="photo.png"; filename*=UTF-8''photo.png`,
        "content-length": String(SIZE),
        "content-security-policy": SANDBOX_POLICY,
        "content-type": "image/png",
        etag,
        "last-modified": MODIFIED_HTTP,
        "x-content-type-options": "nosniff",
      });
      assert.match(etag, /^"[0-9a-f]{32}"$/);
      assertBytes(await collect(response.body!), bytes);
    },
  );
}

kvTest(
  "getAsResponse() sends no Content-Disposition or Last-Modified for a passive Blob",
  async (kv) => {
    await set(kv, ["blob"], new Blob(["hi there"], { type: "text/plain" }));
    const response = await getAsResponse(kv, ["blob"]);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain");
    assert.equal(response.headers.get("content-length"), "8");
    assert.equal(response.headers.get("content-disposition"), null);
    assert.equal(response.headers.get("last-modified"), null);
    assert.equal(await response.text(), "hi there");
  },
);

kvTest("getAsResponse() sends application/octet-stream for bytes with no type", async (kv) => {
  await set(kv, ["bytes"], new Uint8Array([1, 2, 3]));
  const response = await getAsResponse(kv, ["bytes"]);
  assert.equal(response.headers.get("content-type"), "application/octet-stream");
  assert.deepEqual(await response.bytes(), new Uint8Array([1, 2, 3]));
});

kvTest("getAsResponse() answers 200 with an empty body for an empty blob", async (kv) => {
  await set(kv, ["empty"], new Uint8Array(0));
  const response = await getAsResponse(kv, ["empty"]);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-length"), "0");
  assert.equal((await response.bytes()).length, 0);
});

kvTest(
  "getAsResponse() leaves Content-Disposition out with contentDisposition: false",
  async (kv) => {
    await storeFile(kv);
    const response = await getAsResponse(kv, KEY, { contentDisposition: false });
    assert.equal(response.headers.get("content-disposition"), null);
    assert.equal(response.headers.get("last-modified"), MODIFIED_HTTP);
    await response.body!.cancel();
  },
);

kvTest("getAsResponse() answers HEAD with the headers and no body", async (kv) => {
  const { etag } = await storeFile(kv);
  for (const headers of [{}, { range: "bytes=0-9" }]) {
    const response = await getAsResponse(kv, KEY, { request: request(headers, "HEAD") });
    assert.equal(response.status, 200, JSON.stringify(headers)); // Range is for GET only.
    assert.equal(response.body, null);
    assert.equal(response.headers.get("content-length"), String(SIZE));
    assert.equal(response.headers.get("content-range"), null);
    assert.equal(response.headers.get("etag"), etag);
  }
});

kvTest(
  "getAsResponse() answers other methods with the whole blob, no condition evaluated",
  async (kv) => {
    const { bytes, etag } = await storeFile(kv, { size: 10 });
    const headers = { "if-none-match": etag, range: "bytes=0-0" };
    const response = await getAsResponse(kv, KEY, { request: request(headers, "POST") });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.bytes(), bytes);
  },
);

kvTest("getAsResponse() answers 404 when nothing is stored", async (kv) => {
  const response = await getAsResponse(kv, ["missing"], {
    headers: { "cache-control": "max-age=60" },
  });
  assert.equal(response.status, 404);
  assert.equal(response.body, null);
  // `headers` describe a stored blob: a 404 is not cached for as long.
  assert.equal(response.headers.get("cache-control"), null);
});

kvTest("getAsResponse() answers 404 with notFoundBody and notFoundHeaders", async (kv) => {
  const response = await getAsResponse(kv, ["missing"], {
    notFoundBody: "no such file",
    notFoundHeaders: { "content-type": "text/plain", "x-reason": "absent" },
  });
  assert.equal(response.status, 404);
  assert.equal(response.headers.get("x-reason"), "absent");
  assert.equal(response.headers.get("content-type"), "text/plain");
  assert.equal(await response.text(), "no such file");
});

kvTest("getAsResponse() answers 404 for an expired blob", async (kv) => {
  await set(kv, ["soon"], new Uint8Array(10), { expireIn: 50 });
  assert.equal((await getAsResponse(kv, ["soon"], { request: request({}, "HEAD") })).status, 200);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal((await getAsResponse(kv, ["soon"])).status, 404);
});

// ---------------------------------------------------------------------------
// Validators.

kvTest("getAsResponse() answers 304 for a matching If-None-Match", async (kv) => {
  const { etag } = await storeFile(kv);
  const opaque = etag.slice(1, -1);
  const fields = [
    etag,
    `"other", ${etag}`,
    ` "a" ,, ${etag} , `,
    "*",
    ` * `,
    `W/${etag}`,
    `W/"other", W/${etag}`,
    `"other",W/"${opaque}"`,
  ];
  for (const field of fields) {
    for (const method of ["GET", "HEAD"]) {
      const response = await getAsResponse(kv, KEY, {
        request: request({ "if-none-match": field, range: "bytes=0-0" }, method),
        headers: { "cache-control": "no-cache", vary: "cookie" },
      });
      assert.equal(response.status, 304, `${method} ${field}`);
      assert.equal(response.body, null);
      assert.deepEqual(headersOf(response), {
        etag,
        "cache-control": "no-cache",
        vary: "cookie",
        "content-security-policy": SANDBOX_POLICY,
        "x-content-type-options": "nosniff",
      });
    }
  }
});

kvTest("getAsResponse() answers 200 for an If-None-Match that does not match", async (kv) => {
  const { etag } = await storeFile(kv, { size: 10 });
  const opaque = etag.slice(1, -1);
  const fields = [
    `"other"`,
    `W/"other", "another"`,
    opaque, // Unquoted: not an entity-tag.
    `"${opaque}`,
    `${etag}${etag}`, // Two tags without a comma: does not parse.
    `"${opaque.toUpperCase()}"`,
    "",
    "**",
  ];
  for (const field of fields) {
    const response = await getAsResponse(kv, KEY, { request: request({ "if-none-match": field }) });
    assert.equal(response.status, 200, field);
    assert.equal((await response.bytes()).length, 10);
  }
});

kvTest("getAsResponse() decides 304 by the ETag alone, never by If-Modified-Since", async (kv) => {
  const { etag } = await storeFile(kv, { size: 10 });
  const cases: [Record<string, string>, number][] = [
    // A writer may store a newer version with an older date: the date proves nothing.
    [{ "if-modified-since": MODIFIED_HTTP }, 200],
    [{ "if-modified-since": new Date(MODIFIED + 3_600_000).toUTCString() }, 200],
    [{ "if-modified-since": "2030" }, 200],
    [{ "if-modified-since": MODIFIED_HTTP, "if-none-match": `"other"` }, 200],
    [{ "if-modified-since": "yesterday", "if-none-match": etag }, 304],
  ];
  for (const [headers, status] of cases) {
    const response = await getAsResponse(kv, KEY, { request: request(headers) });
    assert.equal(response.status, status, JSON.stringify(headers));
    await response.body?.cancel();
  }
});

kvTest("getAsResponse() changes the ETag on every write, not on rewrap", async (kv) => {
  const encryptionKey = await generateKey({ kid: "a" });
  const { etag } = await storeFile(kv, { size: 10, encryptionKey });
  await rewrap(kv, KEY, { encryptionKey, add: await generateKey({ kid: "b" }) });
  const kept = await getAsResponse(kv, KEY, {
    encryptionKey,
    request: request({ "if-none-match": etag }),
  });
  assert.equal(kept.status, 304);
  const second = await storeFile(kv, { size: 10, encryptionKey });
  assert.notEqual(second.etag, etag);
  const response = await getAsResponse(kv, KEY, {
    encryptionKey,
    request: request({ "if-none-match": etag }),
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("etag"), second.etag);
  assertBytes(await collect(response.body!), second.bytes);
});

// ---------------------------------------------------------------------------
// Ranges.

/** A Range case: the field and the expected answer (`[start, end)` exclusive, or a status). */
type RangeCase = [field: string, expected: [number, number] | 200 | 416];

function rangeCases(size: number, chunk: number): RangeCase[] {
  return [
    ["bytes=0-0", [0, 1]],
    ["bytes=0-65535", [0, 65_536]],
    ["bytes=65535-65536", [65_535, 65_537]],
    [`bytes=${chunk - 1}-${chunk}`, [chunk - 1, chunk + 1]], // Across the first chunk boundary.
    [`bytes=${chunk}-${2 * chunk - 1}`, [chunk, 2 * chunk]], // Exactly chunk 1.
    ["bytes=100-", [100, size]],
    ["bytes=-100", [size - 100, size]],
    [`bytes=-${size}`, [0, size]],
    [`bytes=-${size + 1}`, [0, size]], // A longer suffix is the whole blob.
    [`bytes=${size - 1}-`, [size - 1, size]],
    [`bytes=${size - 10}-${size + 1000}`, [size - 10, size]], // The last byte is clamped.
    ["bytes=5-99999999999999999999", [5, size]],
    ["BYTES = 7-8", [7, 9]], // The unit is case-insensitive, with optional whitespace.
    ["bytes=-0", 416],
    [`bytes=${size}-`, 416],
    [`bytes=${size}-${size + 5}`, 416],
    ["bytes=99999999999999999999-", 416],
    ["bytes=0-0,5-6", 200], // Several ranges: the whole blob.
    ["bytes=0-1, -1", 200],
    ["bytes=garbage", 200],
    ["bytes=5-3", 200], // Last before first: an invalid range, ignored.
    ["bytes=-", 200],
    ["bytes=0x10-", 200],
    ["bytes 0-1", 200],
    ["items=0-1", 200],
    ["", 200],
  ];
}

for (const encrypted of [false, true]) {
  kvTest(
    `getAsResponse() answers 206, 416 or 200 for each Range of ${
      encrypted ? "an encrypted" : "a plain"
    } blob`,
    async (kv) => {
      const encryptionKey = encrypted ? await generateKey() : undefined;
      const options = encryptionKey === undefined ? {} : { encryptionKey };
      const { bytes, etag } = await storeFile(kv, options);
      const chunk = encrypted ? SEALED_CHUNK_SIZE : PLAIN_CHUNK_SIZE;
      for (const [field, expected] of rangeCases(SIZE, chunk)) {
        const response = await getAsResponse(kv, KEY, {
          ...options,
          request: request({ range: field }),
        });
        const label = `Range: ${field}`;
        assert.equal(response.headers.get("etag"), etag, label);
        assert.equal(response.headers.get("accept-ranges"), "bytes", label);
        if (expected === 416) {
          assert.equal(response.status, 416, label);
          assert.equal(response.headers.get("content-range"), `bytes */${SIZE}`, label);
          assert.equal(response.body, null, label);
        } else if (expected === 200) {
          assert.equal(response.status, 200, label);
          assert.equal(response.headers.get("content-range"), null, label);
          assertBytes(await collect(response.body!), bytes, label);
        } else {
          const [start, end] = expected;
          assert.equal(response.status, 206, label);
          assert.equal(
            response.headers.get("content-range"),
            `bytes ${start}-${end - 1}/${SIZE}`,
            label,
          );
          assert.equal(response.headers.get("content-length"), String(end - start), label);
          assert.equal(response.headers.get("content-type"), "image/png", label);
          assertBytes(await collect(response.body!), bytes.subarray(start, end), label);
        }
      }
    },
  );
}

kvTest("getAsResponse() answers 416 for any range of an empty blob", async (kv) => {
  await set(kv, ["empty"], new Uint8Array(0));
  for (const range of ["bytes=0-0", "bytes=0-", "bytes=-5", "bytes=-0"]) {
    const response = await getAsResponse(kv, ["empty"], { request: request({ range }) });
    assert.equal(response.status, 416, range);
    assert.equal(response.headers.get("content-range"), "bytes */0", range);
  }
});

kvTest("getAsResponse() honours Range only when If-Range is the current ETag", async (kv) => {
  const { bytes, etag } = await storeFile(kv);
  const cases: [string, number][] = [
    [etag, 206],
    [` ${etag} `, 206],
    [`W/${etag}`, 200], // If-Range compares strongly.
    [`"0123456789abcdef0123456789abcdef"`, 200], // A stale version.
    [MODIFIED_HTTP, 200], // A date: a File's lastModified is a weak validator.
    [`${etag}, "other"`, 200],
    ["garbage", 200],
  ];
  for (const [ifRange, status] of cases) {
    const headers = { range: "bytes=10-19", "if-range": ifRange };
    const response = await getAsResponse(kv, KEY, { request: request(headers) });
    assert.equal(response.status, status, ifRange);
    const expected = status === 206 ? bytes.subarray(10, 20) : bytes;
    assertBytes(await collect(response.body!), expected, ifRange);
  }
});

// ---------------------------------------------------------------------------
// Headers.

kvTest(
  "getAsResponse() quotes and percent-encodes file names in Content-Disposition",
  async (kv) => {
    const cases: [string, string, string][] = [
      ["photo.png", "photo.png", "photo.png"],
      [`a "quoted" name.txt`, "a _quoted_ name.txt", "a%20%22quoted%22%20name.txt"],
      ["line\r\nbreak.txt", "line__break.txt", "line%0D%0Abreak.txt"],
      ["café.txt", "caf_.txt", "caf%C3%A9.txt"],
      ["😀.png", "_.png", "%F0%9F%98%80.png"],
      [`evil.html"; x=y`, "evil.html_; x=y", "evil.html%22%3B%20x%3Dy"],
      [`back\\slash`, "back_slash", "back%5Cslash"],
      ["100%.txt", "100_.txt", "100%25.txt"],
      ["it's (1)*.txt", "it's (1)*.txt", "it%27s%20%281%29%2A.txt"],
      ["tab\there\u0000.txt", "tab_here_.txt", "tab%09here%00.txt"],
    ];
    for (const [name, fallback, encoded] of cases) {
      await set(kv, ["f"], new File(["x"], name));
      const response = await getAsResponse(kv, ["f"]);
      const header = response.headers.get("content-disposition")!;
      assert.equal(header, `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`, name);
      assert.equal(decodeURIComponent(header.split("filename*=UTF-8''")[1]!), name);
      assert.deepEqual([...response.headers.keys()].sort(), [
        "accept-ranges",
        "content-disposition",
        "content-length",
        "content-security-policy",
        "content-type",
        "etag",
        "last-modified",
        "x-content-type-options",
      ]);
      await response.body!.cancel();
    }
  },
);

Deno.test("contentDisposition() sends a bare attachment for an empty name", () => {
  assert.equal(contentDisposition(""), "attachment");
});

kvTest("getAsResponse() lets the caller's headers replace computed ones", async (kv) => {
  const { etag } = await storeFile(kv);
  const headers = new Headers({
    "content-type": "text/plain; charset=utf-8",
    "content-disposition": "inline",
    "cache-control": "private, max-age=60",
  });
  headers.append("set-cookie", "a=1");
  headers.append("set-cookie", "b=2");
  const cases: [Record<string, string>, number][] = [
    [{}, 200],
    [{ range: "bytes=0-9" }, 206],
    [{ range: `bytes=${SIZE}-` }, 416],
    [{ "if-none-match": etag }, 304],
  ];
  for (const [fields, status] of cases) {
    const response = await getAsResponse(kv, KEY, { request: request(fields), headers });
    assert.equal(response.status, status);
    assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(response.headers.get("content-disposition"), "inline");
    assert.equal(response.headers.get("cache-control"), "private, max-age=60");
    assert.deepEqual(response.headers.getSetCookie(), ["a=1", "b=2"]);
    await response.body?.cancel();
  }
});

Deno.test("contentType() falls back to application/octet-stream for an unsafe type", () => {
  assert.equal(contentType("image/png"), "image/png");
  assert.equal(contentType("text/html; charset=utf-8"), "text/html; charset=utf-8");
  for (const type of ["", " text/html", "text/html\r\nx-evil: 1", "text/\u00e9", "a\u0000b"]) {
    assert.equal(contentType(type), "application/octet-stream", JSON.stringify(type));
  }
});

Deno.test("parseEntityTags() parses lists strictly", () => {
  assert.equal(parseEntityTags("*"), "*");
  assert.deepEqual(parseEntityTags(`W/"a", "b,c" ,,`), [
    { weak: true, opaque: "a" },
    { weak: false, opaque: "b,c" },
  ]);
  for (const field of ["", ",", "a", `"a`, `"a""b"`, `w/"a"`, `W/ "a"`, `"a" b`, `"a", *`]) {
    assert.equal(parseEntityTags(field), null, field);
  }
});

Deno.test("parseRange() converts HTTP's inclusive last byte to an exclusive end", () => {
  assert.deepEqual(parseRange("bytes=0-0", 10), { start: 0, end: 1 });
  assert.deepEqual(parseRange("bytes=9-9", 10), { start: 9, end: 10 });
  assert.deepEqual(parseRange("bytes=-3", 10), { start: 7, end: 10 });
  assert.equal(parseRange("bytes=10-", 10), "unsatisfiable");
  assert.equal(parseRange("bytes=0-1,3-4", 10), null);
});

// ---------------------------------------------------------------------------
// Failures.

kvTest("getAsResponse() rejects with DecryptionError for a wrong or missing key", async (kv) => {
  await storeFile(kv, { encryptionKey: await generateKey() });
  await assertRejects(
    getAsResponse(kv, KEY, { encryptionKey: await generateKey() }),
    DecryptionError,
  );
  await assertRejects(getAsResponse(kv, KEY), DecryptionError);
  // Conditions are evaluated after authentication: a 304 needs the key too.
  await assertRejects(
    getAsResponse(kv, KEY, { request: request({ "if-none-match": "*" }, "HEAD") }),
    DecryptionError,
  );
});

kvTest(
  "getAsResponse() rejects with CorruptBlobError for an entry that is not a blob",
  async (kv) => {
    await kv.set(["plain"], "hello");
    await assertRejects(getAsResponse(kv, ["plain"]), CorruptBlobError);
  },
);

kvTest("getAsResponse() rejects with TypeError for an invalid key", async (kv) => {
  await assertRejects(getAsResponse(kv, ["__kvcrypt__", "chunk"]), TypeError);
});

/** Replaces stored chunk `index` of the blob with `edit` of it. */
async function tamperChunk(
  kv: Deno.Kv,
  etag: string,
  index: number,
  edit: (stored: Uint8Array) => Uint8Array,
): Promise<void> {
  const key = chunkKey(idOf(etag), index);
  const entry = await kv.get<Uint8Array>(key);
  assert.ok(entry.value instanceof Uint8Array);
  await kv.set(key, edit(entry.value.slice()));
}

kvTest(
  "getAsResponse() errors the body stream of an encrypted blob with a tampered chunk",
  async (kv) => {
    const encryptionKey = await generateKey();
    const { bytes, etag } = await storeFile(kv, { encryptionKey });
    await tamperChunk(kv, etag, 2, (stored) => {
      stored[100]! ^= 1;
      return stored;
    });
    const response = await getAsResponse(kv, KEY, { encryptionKey });
    assert.equal(response.status, 200);
    await assertRejects(response.bytes(), DecryptionError);
    // A range that does not touch the chunk still reads.
    const request_ = request({ range: `bytes=0-${SEALED_CHUNK_SIZE - 1}` });
    const head = await getAsResponse(kv, KEY, { encryptionKey, request: request_ });
    assertBytes(await collect(head.body!), bytes.subarray(0, SEALED_CHUNK_SIZE));
  },
);

kvTest(
  "getAsResponse() errors the body stream of a plain blob with a truncated chunk",
  async (kv) => {
    const { etag } = await storeFile(kv);
    await tamperChunk(kv, etag, 1, (stored) => stored.subarray(0, 1000));
    const response = await getAsResponse(kv, KEY);
    assert.equal(response.status, 200);
    await assertRejects(response.bytes(), CorruptBlobError);
  },
);

kvTest(
  "getAsResponse() errors the body when the blob is replaced, and If-Range then gets the new one",
  async (kv) => {
    // Larger than the chunks the reader fetches ahead.
    const { etag } = await storeFile(kv, { size: 10 * 1024 * 1024 });
    const response = await getAsResponse(kv, KEY);
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.ok(!first.done && first.value.length > 0);
    const replacement = await storeFile(kv, { size: 1000 });
    await assertRejects(async () => {
      while (!(await reader.read()).done);
    }, ConcurrentModificationError);

    const resume: ResponseOptions = {
      request: request({ range: `bytes=${first.value.length}-`, "if-range": etag }),
    };
    const resumed = await getAsResponse(kv, KEY, resume);
    assert.equal(resumed.status, 200);
    assert.equal(resumed.headers.get("etag"), replacement.etag);
    assertBytes(await collect(resumed.body!), replacement.bytes);
  },
);

// ---------------------------------------------------------------------------
// Safe for user content: nosniff, a sandboxing CSP, active types as attachments.

/** Types a browser would run or render as a document, spelled as uploaders send them. */
const ACTIVE_TYPES = [
  "text/html",
  "TEXT/HTML",
  "Text/Html; charset=utf-8",
  "text/html;charset=UTF-8",
  "application/xhtml+xml",
  "image/svg+xml",
  "IMAGE/SVG+XML; charset=utf-8",
  "application/xml",
  "text/xml",
  "text/javascript",
  "application/javascript",
  "application/x-unknown-thing",
  // A list: browsers use the last type, so the first must not make it passive.
  "image/png, text/html",
  "image/png;a=b, text/html",
  "IMAGE/PNG,TEXT/HTML",
];

/** The ways a blob with a type gets stored: Blob or File, plain or encrypted. */
const STORED_FORMS = [
  { form: "Blob", file: false, encrypted: false },
  { form: "File", file: true, encrypted: false },
  { form: "encrypted Blob", file: false, encrypted: true },
  { form: "encrypted File", file: true, encrypted: true },
];

for (const { form, file, encrypted } of STORED_FORMS) {
  kvTest(
    `getAsResponse() sends an active-type ${form} as an attachment with nosniff`,
    async (kv) => {
      const options = encrypted ? { encryptionKey: await generateKey() } : {};
      for (const type of ACTIVE_TYPES) {
        const body = "<script>alert(document.cookie)</script>";
        const value = file ? new File([body], "page.html", { type }) : new Blob([body], { type });
        await set(kv, ["upload"], value, options);
        for (const fields of [{}, { range: "bytes=0-3" }]) {
          const response = await getAsResponse(kv, ["upload"], {
            ...options,
            request: request(fields),
          });
          const disposition = response.headers.get("content-disposition");
          assert.ok(disposition?.startsWith("attachment"), `${type}: ${disposition}`);
          if (file) assert.match(disposition!, /filename="page\.html"/);
          // contentDisposition: false does not make an active type inline.
          const withoutName = await getAsResponse(kv, ["upload"], {
            ...options,
            contentDisposition: false,
          });
          assert.ok(withoutName.headers.get("content-disposition")?.startsWith("attachment"));
          await withoutName.body?.cancel();
          assert.equal(response.headers.get("x-content-type-options"), "nosniff");
          assert.equal(response.headers.get("content-security-policy"), SANDBOX_POLICY);
          await response.body?.cancel();
        }
      }
    },
  );

  kvTest(
    `getAsResponse() serves an image/png ${form} inline with nosniff and the sandbox`,
    async (kv) => {
      const options = encrypted ? { encryptionKey: await generateKey() } : {};
      const value = file
        ? new File([randomBytes(10)], "p.png", { type: "image/png" })
        : new Blob([randomBytes(10)], { type: "image/png" });
      await set(kv, ["img"], value, options);
      const response = await getAsResponse(kv, ["img"], { ...options, contentDisposition: false });
      assert.equal(response.headers.get("content-disposition"), null);
      assert.equal(response.headers.get("content-type"), "image/png");
      assert.equal(response.headers.get("x-content-type-options"), "nosniff");
      assert.equal(response.headers.get("content-security-policy"), SANDBOX_POLICY);
      await response.body?.cancel();
    },
  );

  kvTest(
    `getAsResponse() serves an HTML ${form} inline only with allowActiveContent`,
    async (kv) => {
      const options = encrypted ? { encryptionKey: await generateKey() } : {};
      const value = file
        ? new File(["<p>ok</p>"], "page.html", { type: "text/html" })
        : new Blob(["<p>ok</p>"], { type: "text/html" });
      await set(kv, ["page"], value, options);
      const response = await getAsResponse(kv, ["page"], {
        ...options,
        allowActiveContent: true,
        contentDisposition: false,
      });
      assert.equal(response.headers.get("content-disposition"), null);
      assert.equal(response.headers.get("content-type"), "text/html");
      assert.equal(response.headers.get("x-content-type-options"), "nosniff");
      assert.equal(await response.text(), "<p>ok</p>");
      // The caller's headers may replace the policy for content they trust.
      const trusted = await getAsResponse(kv, ["page"], {
        ...options,
        allowActiveContent: true,
        headers: { "content-security-policy": "default-src 'self'" },
      });
      assert.equal(trusted.headers.get("content-security-policy"), "default-src 'self'");
      await trusted.body?.cancel();
    },
  );
}

kvTest(
  "getAsResponse() sends a forged plain record whose metadata says text/html as an attachment",
  async (kv) => {
    // No set(): an attacker with write access stores a record of their own.
    const id = randomBytes(16);
    const body = new TextEncoder().encode("<script>steal()</script>");
    const layout = { id, chunkSize: PLAIN_CHUNK_SIZE, size: body.length, chunks: 1, expiresAt: 0 };
    await kv.set(["forged"], encodePlainRecord(layout, { kind: "blob", type: "text/html" }, body));
    const response = await getAsResponse(kv, ["forged"]);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/html");
    assert.equal(response.headers.get("content-disposition"), "attachment");
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.equal(response.headers.get("content-security-policy"), SANDBOX_POLICY);
    assert.equal(await response.text(), "<script>steal()</script>");
  },
);

Deno.test("isPassiveType() allows only images but SVG, audio, video, PDF, plain text and bytes", () => {
  for (
    const type of [
      "image/png",
      "IMAGE/JPEG",
      "image/webp; q=1",
      "audio/mpeg",
      "video/mp4",
      "application/pdf",
      "Application/PDF",
      "text/plain",
      "text/plain; charset=utf-8",
      "application/octet-stream",
    ]
  ) {
    assert.ok(isPassiveType(type), type);
  }
  for (const type of [...ACTIVE_TYPES, "", "image", "image/", "/png", "text/plain+html"]) {
    assert.ok(!isPassiveType(type), type);
  }
});
