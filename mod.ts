/**
 * kvcrypt stores large binary values (Uint8Array, ReadableStream, Blob, File)
 * in Deno KV by chunking them across entries, optionally encrypting every
 * chunk with AES-GCM under a key you supply. Writes are crash-safe and
 * compare-and-set capable, reads stream with bounded memory, and tampering
 * with encrypted entries is detected.
 *
 * Runs on Deno, Deno Deploy and Node 20.6 or later, where `openKv()` from
 * `@deno/kv` gives the store: every function accepts its `Kv` as it is.
 *
 * @example Encrypted round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKey, get, set } from "@kvcrypt/kvcrypt";
 *
 * const kv = await Deno.openKv(":memory:");
 * const encryptionKey = await generateKey();
 * const photo = new File([new Uint8Array(300_000)], "photo.jpg", { type: "image/jpeg" });
 * await set(kv, ["photos", 1], photo, { encryptionKey });
 * const entry = await get(kv, ["photos", 1], { blob: true, encryptionKey });
 * assert.ok(entry.value instanceof File);
 * assert.equal(entry.value.name, "photo.jpg");
 * assert.equal(entry.value.size, 300_000);
 * kv.close();
 * ```
 *
 * @module
 */

export * from "./blob.ts";
export * from "./crypto.ts";
export * from "./keys.ts";
