/**
 * Type-level proof, checked by `deno check` (in `deno task check`): `@deno/kv`'s
 * `Kv` goes to every function that takes a store, without a cast, and a value
 * that lacks part of a store's shape is refused. Nothing here runs.
 *
 * @module
 */

import type { Kv } from "@deno/kv";
import {
  cryptoKv,
  get,
  getAsBlob,
  getAsResponse,
  getAsStream,
  getMeta,
  list,
  remove,
  rewrap,
  set,
  stage,
  vacuum,
} from "../mod.ts";
import { migrateKvToolbox } from "../migrate.ts";

/** Every store-taking function called with an `@deno/kv` store. */
export async function withDenoKvFromNpm(kv: Kv, encryptionKey: JsonWebKey): Promise<void> {
  const committed = await set(kv, ["a"], new Uint8Array(1), { encryptionKey });
  await set(kv, ["a"], new Blob(["x"]), { versionstamp: committed.versionstamp, encryptionKey });
  const bytes: Uint8Array | null = (await get(kv, ["a"], { encryptionKey })).value;
  const stream: ReadableStream<Uint8Array> | null = await getAsStream(kv, ["a"], {
    range: { start: 0, end: 1 },
    encryptionKey,
  });
  const blob: Blob | null = await getAsBlob(kv, ["a"], { encryptionKey });
  const response: Response = await getAsResponse(kv, ["a"], { encryptionKey });
  const meta = (await getMeta(kv, ["a"], { encryptionKey })).value;
  for await (const entry of list(kv, { prefix: [] }, { encryptionKey })) entry.key;
  await rewrap(kv, ["a"], { encryptionKey, add: [encryptionKey] });
  const staged = await stage(kv, ["b"], new Uint8Array(1));
  await staged.complete(await staged.addTo(kv.atomic()).commit());
  await remove(kv, ["a"]);
  await vacuum(kv);
  await migrateKvToolbox(kv, { prefix: [] });

  const values = cryptoKv(kv, encryptionKey);
  await values.set(["v"], { n: 1n });
  await values.atomic().check({ key: ["v"], versionstamp: null }).set(["v"], 1).commit();
  for await (const entry of values.list({ prefix: [] })) entry.value;
  void [bytes, stream, blob, response, meta];
}

/** What is not a store is refused at compile time. */
export async function notAStore(kv: Kv): Promise<void> {
  const { atomic: _atomic, ...withoutAtomic } = kv;
  // @ts-expect-error a store without atomic() cannot commit a record
  await set(withoutAtomic, ["a"], new Uint8Array(1));
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, [
    "encrypt",
    "decrypt",
  ]);
  // @ts-expect-error a Map is not a store
  cryptoKv(new Map(), key);
}
