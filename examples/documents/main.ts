/**
 * The documents app: upload, share and download documents stored as kvcrypt
 * blobs in Deno KV, whose keys live in a separate key service.
 *
 * ```sh
 * deno task users add alice   # prints alice's API token on the last line
 * deno task serve             # the app on http://127.0.0.1:8000/, with its own key service
 * ```
 *
 * Environment: `HOST` (127.0.0.1), `PORT` (8000), `DOCUMENTS_DB`
 * (data/documents.sqlite3), `MAX_UPLOAD_BYTES` (8 GiB), `KEY_SERVICE_URL` and
 * `KEY_SERVICE_TOKEN` (a key service run apart; unset: one is started as a
 * child process on a free port with a fresh token and `KEY_SERVICE_DB`,
 * default `keys.sqlite3` next to `DOCUMENTS_DB`).
 *
 * @module
 */

import { vacuum } from "../../mod.ts";
import { createApp, DEFAULT_MAX_UPLOAD_BYTES } from "./_app.ts";
import { toBase64 } from "./_base64.ts";
import { printListening } from "./_http.ts";
import { KeyService, type KeyServiceConfig } from "./_key_wrapper.ts";
import { waitForListening } from "./_process.ts";
import { openStore } from "./_store.ts";

/** Where the app keeps its store unless `DOCUMENTS_DB` says otherwise. */
export const DEFAULT_DOCUMENTS_DB = "data/documents.sqlite3";
/** How long the app waits for its key service to come up. */
const KEY_SERVICE_START_MS = 30_000;
/** How often crashed writes are cleaned up: hourly, as old as vacuum's default age. */
const VACUUM_EVERY_MS = 60 * 60 * 1000;

/** A key service child process and where it listens. */
interface KeyServiceChild {
  process: Deno.ChildProcess;
  config: KeyServiceConfig;
}

function folderOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : path.slice(0, slash) || "/";
}

/** Starts `key_service.ts` on a free port with a fresh token; resolves once it listens. */
async function startKeyService(documentsDb: string): Promise<KeyServiceChild> {
  const token = toBase64(crypto.getRandomValues(new Uint8Array(32)));
  const keyDb = Deno.env.get("KEY_SERVICE_DB") ?? `${folderOf(documentsDb)}/keys.sqlite3`;
  const script = new URL("./key_service.ts", import.meta.url);
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      script.href,
    ],
    env: {
      HOST: "127.0.0.1",
      PORT: "0",
      KEY_SERVICE_TOKEN: token,
      KEY_SERVICE_DB: keyDb,
      // The child exits when this process's end of its stdin closes (we died).
      KEY_SERVICE_EXIT_WITH_STDIN: "1",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const encoder = new TextEncoder();
  const url = await waitForListening(
    process.stdout,
    KEY_SERVICE_START_MS,
    (text) => Deno.stdout.writeSync(encoder.encode(text)),
    "key service",
  );
  return { process, config: { url, token } };
}

async function waitUntilUp(keys: KeyService): Promise<void> {
  const deadline = Date.now() + KEY_SERVICE_START_MS;
  while (!(await keys.isUp())) {
    if (Date.now() > deadline) throw new Error("Cannot start: the key service does not answer");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function maxUploadBytes(): number {
  const text = Deno.env.get("MAX_UPLOAD_BYTES");
  const value = text === undefined ? DEFAULT_MAX_UPLOAD_BYTES : Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Cannot start: MAX_UPLOAD_BYTES must be a whole number of bytes`);
  }
  return value;
}

async function main(): Promise<void> {
  const documentsDb = Deno.env.get("DOCUMENTS_DB");
  const limit = maxUploadBytes();
  const kv = await openStore(documentsDb, DEFAULT_DOCUMENTS_DB);
  const external = Deno.env.get("KEY_SERVICE_URL");
  let child: KeyServiceChild | undefined;
  let config: KeyServiceConfig;
  if (external === undefined || external === "") {
    child = await startKeyService(documentsDb ?? DEFAULT_DOCUMENTS_DB);
    config = child.config;
  } else {
    config = { url: external, token: Deno.env.get("KEY_SERVICE_TOKEN") ?? "" };
  }
  const keys = new KeyService(config);
  // Only once the key service answers: no request may meet a missing service at start.
  if (child !== undefined) await waitUntilUp(keys);
  else if (!(await keys.isUp())) console.error("documents: the key service does not answer yet");
  const server = Deno.serve({
    hostname: Deno.env.get("HOST") ?? "127.0.0.1",
    port: Number(Deno.env.get("PORT") ?? 8000),
    onListen: (addr) => printListening("documents", addr),
  }, createApp({ kv, keys, maxUploadBytes: limit }));
  const cleanup = setInterval(() => vacuum(kv).catch(() => {}), VACUUM_EVERY_MS);
  const stop = async () => {
    clearInterval(cleanup);
    child?.process.kill("SIGTERM");
    await server.shutdown();
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, stop);
    } catch {
      // No signals where the platform manages the process (Deno Deploy).
    }
  }
  child?.process.status.then((status) => {
    console.error(`documents: the key service exited (code ${status.code})`);
  });
}

if (import.meta.main) await main();
