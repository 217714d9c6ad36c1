/**
 * kvcrypt demo: stores an encrypted File and a 64 MiB stream in a Deno KV
 * file in a temporary folder, reads both back, verifies every byte, and
 * prints sizes and throughput. Runs unattended: `deno task demo`.
 *
 * @module
 */

import { generateKey, get, getAsStream, getMeta, set, vacuum } from "./mod.ts";

const MIB = 1024 * 1024;
const STREAM_BYTES = 64 * MIB;
const PIECE_BYTES = 256 * 1024;

/** Deterministic pseudo-random bytes for piece `index`, so the reader can regenerate them. */
function piece(index: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = (index + 1) * 0x9e3779b1 >>> 0;
  for (let i = 0; i < length; i += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state;
    out[i + 1] = state >>> 8;
    out[i + 2] = state >>> 16;
    out[i + 3] = state >>> 24;
  }
  return out;
}

function sourceStream(total: number): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream({
    pull(controller) {
      const offset = index * PIECE_BYTES;
      if (offset >= total) return controller.close();
      controller.enqueue(piece(index++, Math.min(PIECE_BYTES, total - offset)));
    },
  });
}

function progress(label: string, done: number, total: number, started: number): void {
  const seconds = (performance.now() - started) / 1000;
  const line = `\r${label}: ${(done / MIB).toFixed(1)} / ${(total / MIB).toFixed(0)} MiB` +
    `  ${(done / MIB / Math.max(seconds, 1e-3)).toFixed(1)} MiB/s   `;
  Deno.stdout.writeSync(new TextEncoder().encode(line));
}

async function verifyStream(stream: ReadableStream<Uint8Array>, total: number): Promise<number> {
  const expected = { index: 0, offset: 0, bytes: piece(0, Math.min(PIECE_BYTES, total)) };
  let seen = 0;
  const started = performance.now();
  for await (const chunk of stream) {
    for (let i = 0; i < chunk.length; i++) {
      if (expected.offset === expected.bytes.length) {
        expected.index++;
        expected.offset = 0;
        const start = expected.index * PIECE_BYTES;
        expected.bytes = piece(expected.index, Math.min(PIECE_BYTES, total - start));
      }
      if (chunk[i] !== expected.bytes[expected.offset++]) {
        throw new Error(`Cannot verify the stream: byte ${seen + i} differs`);
      }
    }
    seen += chunk.length;
    if (seen % (8 * MIB) < chunk.length || seen === total) progress("read ", seen, total, started);
  }
  console.log();
  return seen;
}

const dir = await Deno.makeTempDir({ prefix: "kvcrypt-demo-" });
const kv = await Deno.openKv(`${dir}/demo.sqlite3`);
try {
  const encryptionKey = await generateKey({ bits: 256 });
  console.log(`KV file: ${dir}/demo.sqlite3`);
  console.log(`key: AES-256-GCM, kid ${encryptionKey.kid}`);

  const file = new File(["Hello from kvcrypt!\n".repeat(5_000)], "hello.txt", {
    type: "text/plain",
    lastModified: Date.UTC(2026, 0, 1),
  });
  await set(kv, ["files", "hello.txt"], file, { encryptionKey });
  const back = (await get(kv, ["files", "hello.txt"], { blob: true, encryptionKey })).value;
  if (!(back instanceof File) || back.name !== file.name || back.type !== file.type) {
    throw new Error("Cannot verify the File: its metadata did not round-trip");
  }
  if (await back.text() !== await file.text()) throw new Error("Cannot verify the File's bytes");
  console.log(`File ${back.name} (${back.type}, ${back.size} bytes): round trip ok`);

  let started = performance.now();
  await set(kv, ["streams", "big"], sourceStream(STREAM_BYTES), {
    encryptionKey,
    onProgress: (bytes) => progress("write", bytes, STREAM_BYTES, started),
  });
  const writeSeconds = (performance.now() - started) / 1000;
  console.log();
  const meta = (await getMeta(kv, ["streams", "big"], { encryptionKey })).value!;
  console.log(`stored ${meta.size} bytes in ${meta.chunks} encrypted chunks`);

  started = performance.now();
  const stream = await getAsStream(kv, ["streams", "big"], { encryptionKey });
  const read = await verifyStream(stream!, STREAM_BYTES);
  const readSeconds = (performance.now() - started) / 1000;
  console.log(
    `64 MiB stream: write ${(STREAM_BYTES / MIB / writeSeconds).toFixed(1)} MiB/s, ` +
      `read+verify ${(read / MIB / readSeconds).toFixed(1)} MiB/s, every byte matches`,
  );
  const leftovers = await vacuum(kv, { olderThan: 0 });
  console.log(`vacuum: ${leftovers.versions} stray versions, ${leftovers.chunks} stray chunks`);
} finally {
  kv.close();
  await Deno.remove(dir, { recursive: true });
}
