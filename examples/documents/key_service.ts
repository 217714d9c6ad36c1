/**
 * The key service of the documents example: one AES-256 key per user,
 * created on first use and kept in its own Deno KV file, that wraps and
 * unwraps blob secrets for callers holding the service token. No endpoint
 * returns a user key; every call leaves an append-only audit entry.
 *
 * ```sh
 * KEY_SERVICE_TOKEN=… deno task serve:keys   # HOST, PORT (8001), KEY_SERVICE_DB (data/keys.sqlite3)
 * ```
 *
 * Protocol (JSON, base64 bytes, `Authorization: Bearer <KEY_SERVICE_TOKEN>`):
 *
 * - `POST /v1/keys/:user/wrap` `{ "secret", "context" }` → `{ "wrapped" }`
 *   (`iv ‖ AES-256-GCM(key, iv, secret, AAD = context)`, 60 bytes for a 32-byte secret)
 * - `POST /v1/keys/:user/unwrap` `{ "wrapped", "context" }` → `{ "secret" }`;
 *   422 when `wrapped` or `context` is not what `wrap` was given, 404 for a
 *   user without a key.
 * - `GET /v1/audit?user=NAME` → `{ "entries": [{ user, kid, operation, time, outcome }] }`
 * - `GET /health` → 200 (no token).
 *
 * @module
 */

import { fromBase64, toBase64 } from "./_base64.ts";
import { fail, HttpError, json, printListening, readJsonObject, stringField } from "./_http.ts";
import { openStore } from "./_store.ts";
import { isUserName } from "./_names.ts";

/** AES-GCM IV length: 96 bits, the size GCM is defined for. */
const IV_BYTES = 12;
/** User keys are AES-256. */
const KEY_BYTES = 32;
/** Largest secret or context accepted (kvcrypt's are 32 and under 100 bytes). */
const FIELD_MAX = 1_024;
/** Audit entries one `GET /v1/audit` returns at most. */
const AUDIT_PAGE = 1_000;

/** One audit entry: who asked for what, when, and how it ended. */
export interface AuditEntry {
  /** The user whose key was asked for. */
  user: string;
  /** The key id (the user's name). */
  kid: string;
  /** `wrap`, `unwrap` or `audit`. */
  operation: string;
  /** Milliseconds since the epoch. */
  time: number;
  /** `ok`, `unauthorized`, `rejected` (unwrap failed), `no-key` or `bad-request`. */
  outcome: string;
}

/** The KV key of a user's key record. */
function userKeyKey(user: string): Deno.KvKey {
  return ["user-keys", user];
}

/**
 * The key service as a request handler.
 *
 * @param kv The key service's own store.
 * @param token The service token callers must present.
 * @returns The handler.
 */
export function keyServiceHandler(
  kv: Deno.Kv,
  token: string,
): (request: Request) => Promise<Response> {
  const tokenDigest = sha256(new TextEncoder().encode(token));
  const keys = new Map<string, Promise<CryptoKey>>();
  return async (request) => {
    const url = new URL(request.url);
    if (url.pathname === "/health") return new Response("ok\n");
    const route = matchRoute(request.method, url.pathname);
    if (route === undefined) return fail(404, "Cannot find this endpoint");
    const audit = (outcome: string) => appendAudit(kv, route.user, route.operation, outcome);
    if (!(await authorized(request, tokenDigest))) {
      await audit("unauthorized");
      return fail(401, "Cannot authenticate: a valid service token is required", {
        "www-authenticate": "Bearer",
      });
    }
    try {
      if (route.operation === "audit") return json({ entries: await readAudit(kv, url) });
      const body = await readJsonObject(request);
      const context = field(body, "context");
      const response = route.operation === "wrap"
        ? await wrap(kv, keys, route.user, field(body, "secret"), context)
        : await unwrap(kv, keys, route.user, field(body, "wrapped"), context);
      await audit("ok");
      return response;
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      await audit(
        error.status === 404 ? "no-key" : error.status === 422 ? "rejected" : "bad-request",
      );
      return fail(error.status, error.message);
    }
  };
}

interface Route {
  operation: "wrap" | "unwrap" | "audit";
  user: string;
}

function matchRoute(method: string, path: string): Route | undefined {
  if (method === "GET" && path === "/v1/audit") return { operation: "audit", user: "" };
  const match = /^\/v1\/keys\/([^/]+)\/(wrap|unwrap)$/.exec(path);
  if (method !== "POST" || match === null || !isUserName(match[1])) return undefined;
  return { operation: match[2] as "wrap" | "unwrap", user: match[1] };
}

async function authorized(request: Request, tokenDigest: Promise<Uint8Array>): Promise<boolean> {
  const header = request.headers.get("authorization") ?? "";
  const given = header.startsWith("Bearer ") ? header.slice(7) : "";
  // Digests of both sides, compared in constant time: the time taken reveals
  // neither the token's length nor how much of a guess matched (timing attack).
  const a = await sha256(new TextEncoder().encode(given));
  const b = await tokenDigest;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0 && given.length > 0;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function field(body: Record<string, unknown>, name: string): Uint8Array<ArrayBuffer> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = fromBase64(stringField(body, name));
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw new HttpError(400, `Cannot read the body: "${name}" is not base64`);
  }
  if (bytes.length < 1 || bytes.length > FIELD_MAX) {
    throw new HttpError(400, `Cannot read the body: "${name}" must be 1-${FIELD_MAX} bytes`);
  }
  return bytes;
}

async function wrap(
  kv: Deno.Kv,
  keys: Map<string, Promise<CryptoKey>>,
  user: string,
  secret: Uint8Array<ArrayBuffer>,
  context: Uint8Array<ArrayBuffer>,
): Promise<Response> {
  const key = await userKey(kv, keys, user, true);
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  // The context is the AAD: a wrapped secret moved to another blob's header
  // (another id or kid in the context) does not unwrap (stanza transplant).
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: context },
    key,
    secret,
  );
  const wrapped = new Uint8Array(IV_BYTES + sealed.byteLength);
  wrapped.set(iv);
  wrapped.set(new Uint8Array(sealed), IV_BYTES);
  return json({ wrapped: toBase64(wrapped) });
}

async function unwrap(
  kv: Deno.Kv,
  keys: Map<string, Promise<CryptoKey>>,
  user: string,
  wrapped: Uint8Array<ArrayBuffer>,
  context: Uint8Array<ArrayBuffer>,
): Promise<Response> {
  const key = await userKey(kv, keys, user, false);
  let secret: ArrayBuffer;
  try {
    secret = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: wrapped.subarray(0, IV_BYTES), additionalData: context },
      key,
      wrapped.subarray(IV_BYTES),
    );
  } catch {
    throw new HttpError(422, "Cannot unwrap: the wrapped secret or its context was altered");
  }
  return json({ secret: toBase64(new Uint8Array(secret)) });
}

/** The user's key, created (on a wrap) when the user has none; imported once, non-extractable. */
function userKey(
  kv: Deno.Kv,
  keys: Map<string, Promise<CryptoKey>>,
  user: string,
  create: boolean,
): Promise<CryptoKey> {
  const cached = keys.get(user);
  if (cached !== undefined) return cached;
  const loading = loadUserKey(kv, user, create);
  keys.set(user, loading);
  // A failed load (no key yet) is not cached: the next wrap creates it.
  loading.catch(() => keys.delete(user));
  return loading;
}

async function loadUserKey(kv: Deno.Kv, user: string, create: boolean): Promise<CryptoKey> {
  let entry = await kv.get<Uint8Array>(userKeyKey(user));
  if (entry.value === null) {
    if (!create) throw new HttpError(404, `Cannot unwrap: user "${user}" has no key`);
    const raw = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
    // Create only: two first wraps racing must not give the user two keys.
    await kv.atomic().check(entry).set(userKeyKey(user), raw).commit();
    entry = await kv.get<Uint8Array>(userKeyKey(user));
  }
  const raw = entry.value;
  if (!(raw instanceof Uint8Array) || raw.length !== KEY_BYTES) {
    throw new Error(`Cannot load the key of user "${user}": the stored key is damaged`);
  }
  return await crypto.subtle.importKey("raw", new Uint8Array(raw), "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

async function appendAudit(
  kv: Deno.Kv,
  user: string,
  operation: string,
  outcome: string,
): Promise<void> {
  const time = Date.now();
  const entry: AuditEntry = { user, kid: user, operation, time, outcome };
  const nonce = crypto.getRandomValues(new Uint8Array(8));
  const key = ["audit", time, toBase64(nonce)];
  // Append-only: a set that would overwrite an entry fails instead.
  await kv.atomic().check({ key, versionstamp: null }).set(key, entry).commit();
}

async function readAudit(kv: Deno.Kv, url: URL): Promise<AuditEntry[]> {
  const user = url.searchParams.get("user");
  const entries: AuditEntry[] = [];
  for await (const entry of kv.list<AuditEntry>({ prefix: ["audit"] }, { reverse: true })) {
    if (user === null || entry.value.user === user) entries.push(entry.value);
    if (entries.length === AUDIT_PAGE) break;
  }
  return entries.reverse();
}

/** Where the key service keeps its keys unless `KEY_SERVICE_DB` says otherwise. */
export const DEFAULT_KEY_DB = "data/keys.sqlite3";

async function main(): Promise<void> {
  const token = Deno.env.get("KEY_SERVICE_TOKEN") ?? "";
  if (token.length < 16) {
    console.error("key service: Cannot start: set KEY_SERVICE_TOKEN (16 characters or more)");
    Deno.exit(2);
  }
  const kv = await openStore(Deno.env.get("KEY_SERVICE_DB"), DEFAULT_KEY_DB);
  const handler = keyServiceHandler(kv, token);
  if (Deno.env.get("KEY_SERVICE_EXIT_WITH_STDIN") === "1") {
    // Started by the app: exit when it does (its end of our stdin closes).
    (async () => {
      for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
      Deno.exit(0);
    })();
  }
  Deno.serve({
    hostname: Deno.env.get("HOST") ?? "127.0.0.1",
    port: Number(Deno.env.get("PORT") ?? 8001),
    onListen: (addr) => printListening("key service", addr),
  }, handler);
}

if (import.meta.main) await main();
