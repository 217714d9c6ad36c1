/**
 * A real key service for tests: a `Deno.serve` on 127.0.0.1 holding one
 * AES-256-GCM key that never leaves it, with `POST /wrap` and `POST /unwrap`,
 * and a {@linkcode KeyWrapper} that talks to it over HTTP. Wrapped secrets
 * are 200 bytes, as a cloud KMS ciphertext would be.
 *
 * @module
 */

import type { KeyWrapper } from "../keys.ts";

/** Bytes the service returns for a wrapped secret (like a KMS ciphertext blob). */
export const SERVICE_WRAPPED_BYTES = 200;
/** AES-GCM nonce and tag the service adds. */
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Zero padding sealed after the secret, so the whole 200 bytes are authenticated. */
const SECRET_BYTES = 32;
const PADDING_BYTES = SERVICE_WRAPPED_BYTES - IV_BYTES - TAG_BYTES - SECRET_BYTES;

/** What a failed call to the key service rejects with. */
export class KeyServiceError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyServiceError";
  }
}

/** A running test key service. */
export interface KeyService extends AsyncDisposable {
  /** Its base URL. */
  readonly url: string;
  /** Calls answered so far, by path. */
  readonly calls: { wrap: number; unwrap: number };
  /** Stops it (calls then fail to connect); the key is kept for a restart. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same key. */
  start(): Promise<void>;
}

function b64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

function unb64(text: unknown): Uint8Array<ArrayBuffer> {
  if (typeof text !== "string") throw new TypeError("not base64");
  return Uint8Array.fromBase64(text);
}

/** Starts a key service on a free port of 127.0.0.1. */
export async function startKeyService(): Promise<KeyService> {
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
  const calls = { wrap: 0, unwrap: 0 };
  async function handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    const body = await request.json();
    const context = unb64(body.context);
    if (path === "/wrap") {
      calls.wrap++;
      const secret = unb64(body.secret);
      const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
      const plaintext = new Uint8Array(SECRET_BYTES + PADDING_BYTES);
      plaintext.set(secret);
      const sealed = new Uint8Array(
        await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: context },
          key,
          plaintext,
        ),
      );
      return Response.json({ wrapped: b64(new Uint8Array([...iv, ...sealed])) });
    }
    if (path === "/unwrap") {
      calls.unwrap++;
      const wrapped = unb64(body.wrapped);
      try {
        const opened = new Uint8Array(
          await crypto.subtle.decrypt(
            { name: "AES-GCM", iv: wrapped.subarray(0, IV_BYTES), additionalData: context },
            key,
            wrapped.subarray(IV_BYTES),
          ),
        );
        return Response.json({ secret: b64(opened.subarray(0, SECRET_BYTES)) });
      } catch {
        return Response.json({ error: "the wrapped secret does not open" }, { status: 400 });
      }
    }
    return new Response("not found", { status: 404 });
  }
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  let port = 0;
  const start = async () => {
    const ready = Promise.withResolvers<void>();
    server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => ready.resolve() }, handle);
    await ready.promise;
    port = server.addr.port;
  };
  const stop = async () => {
    await server?.shutdown();
    server = undefined;
  };
  await start();
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    calls,
    stop,
    start,
    [Symbol.asyncDispose]: stop,
  };
}

/** POSTs JSON to the service; rejects with KeyServiceError on any failure. */
async function call(url: string, body: Record<string, string>): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetch(url, { method: "POST", body: JSON.stringify(body) });
  } catch (cause) {
    throw new KeyServiceError("the key service is unreachable", { cause });
  }
  const json = await response.json();
  if (!response.ok) throw new KeyServiceError(`the key service answered ${response.status}`);
  return json;
}

/** A KeyWrapper backed by the key service at `service.url`. */
export function serviceWrapper(service: KeyService, kid = "service"): KeyWrapper {
  return {
    kid,
    async wrap(secret, context) {
      const json = await call(`${service.url}/wrap`, {
        secret: b64(secret),
        context: b64(context),
      });
      return unb64(json.wrapped);
    },
    async unwrap(wrapped, context) {
      const json = await call(`${service.url}/unwrap`, {
        wrapped: b64(wrapped),
        context: b64(context),
      });
      return unb64(json.secret);
    },
  };
}
