/**
 * The documents app's HTTP handler: the JSON API under `/api`, the browser
 * session under `/session`, and the web page at `/`.
 *
 * @module
 */

import { DecryptionError } from "../../mod.ts";
import {
  authenticate,
  type Caller,
  checkCsrf,
  cookieOf,
  endSession,
  SESSION_COOKIE,
  sessionCookie,
  startSession,
} from "./_auth.ts";
import { Documents, type Upload } from "./_documents.ts";
import { fail, HttpError, json, readJsonObject, stringField } from "./_http.ts";
import { type KeyService, KeyServiceUnavailableError } from "./_key_wrapper.ts";

/** The default upload limit: 8 GiB, past the 5 GB where other services stop. */
export const DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024 ** 3;

/** What the app needs. */
export interface AppOptions {
  /** The app's store. */
  kv: Deno.Kv;
  /** The key service. */
  keys: KeyService;
  /** The largest upload, in bytes. */
  maxUploadBytes: number;
}

/** The page's own files, served as they are. */
const STATIC: Record<string, string> = {
  "/": "index.html",
  "/app.js": "app.js",
  "/app.css": "app.css",
};
const STATIC_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};
/** The page loads only its own script and style, and cannot be framed (clickjacking). */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/**
 * Builds the app's request handler.
 *
 * @param options The store, the key service and the upload limit.
 * @returns The handler.
 */
export function createApp(options: AppOptions): (request: Request) => Promise<Response> {
  const docs = new Documents(options.kv, options.keys, options.maxUploadBytes);
  const { kv } = options;
  return async (request) => {
    const url = new URL(request.url);
    try {
      if (url.pathname.startsWith("/api/")) {
        return await api(docs, request, url, await authenticate(kv, request));
      }
      if (url.pathname === "/session") return await session(kv, request, url);
      const file = STATIC[url.pathname];
      if (file !== undefined && (request.method === "GET" || request.method === "HEAD")) {
        return await serveStatic(file, request.method);
      }
      return fail(404, "Cannot find this page");
    } catch (error) {
      return errorResponse(error, request);
    }
  };
}

function errorResponse(error: unknown, request: Request): Response {
  if (error instanceof HttpError) {
    const headers: HeadersInit = error.status === 401 ? { "www-authenticate": "Bearer" } : {};
    return fail(error.status, error.message, headers);
  }
  if (causedByKeyService(error)) {
    return fail(503, "Cannot reach the key service: try again later; nothing was changed", {
      "retry-after": "5",
    });
  }
  if (error instanceof DecryptionError) {
    console.error(`documents: ${request.method} ${new URL(request.url).pathname}:`, error);
    return fail(500, "Cannot open the document: it failed authentication");
  }
  if (error instanceof RangeError) return fail(400, `Cannot do that: ${error.message}`);
  // A client that went away mid-upload shows up as its body erroring; the
  // write stored nothing and nobody is left to read this answer.
  if (request.body !== null && isBodyError(error)) {
    return fail(400, "Cannot store the document: the upload was cut off");
  }
  console.error(`documents: ${request.method} ${new URL(request.url).pathname}:`, error);
  return fail(500, "Cannot complete the request: internal error");
}

function causedByKeyService(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof KeyServiceUnavailableError) return true;
  }
  return false;
}

function isBodyError(error: unknown): boolean {
  return error instanceof Error &&
    (error.name === "Http" || error.name === "BadResource" || error.name === "Interrupted" ||
      error.name === "ConnectionReset" || error.name === "UnexpectedEof" ||
      /body|connection|stream/i.test(error.message));
}

async function api(docs: Documents, request: Request, url: URL, caller: Caller): Promise<Response> {
  const parts = url.pathname.slice("/api/".length).split("/").map(decodePart);
  const { method } = request;
  const { user } = caller;
  if (parts[0] !== "documents") return fail(404, "Cannot find this endpoint");
  const [, id, sub, target] = parts;
  if (id === undefined || id === "") {
    if (method === "GET") return json(await docs.list(user));
    if (method === "POST") return json(await docs.create(user, uploadOf(request, url)), 201);
  } else if (sub === undefined) {
    if (method === "GET" || method === "HEAD") return await docs.respond(user, id, request);
    if (method === "PUT") return json(await docs.replace(user, id, uploadOf(request, url)));
    if (method === "DELETE") return noContent(await docs.delete(user, id));
  } else if (sub === "info" && target === undefined && method === "GET") {
    return json(await docs.info(user, id));
  } else if (sub === "shares" && target === undefined && method === "POST") {
    const body = await readJsonObject(request);
    return noContent(await docs.share(user, id, stringField(body, "user")));
  } else if (
    sub === "shares" && target !== undefined && parts.length === 4 && method === "DELETE"
  ) {
    return noContent(await docs.unshare(user, id, target));
  }
  return fail(405, `Cannot ${method} ${url.pathname}`);
}

function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, "Cannot read the path: bad percent-encoding");
  }
}

function noContent(_: void): Response {
  return new Response(null, { status: 204 });
}

/** A body with its `?name=` and Content-Type; a replacement without them keeps the old ones. */
function uploadOf(request: Request, url: URL): Upload {
  const length = request.headers.get("content-length");
  return {
    body: request.body,
    length: length === null ? undefined : Number(length),
    name: url.searchParams.get("name") ?? undefined,
    type: request.headers.get("content-type") ?? undefined,
  };
}

async function session(kv: Deno.Kv, request: Request, url: URL): Promise<Response> {
  const secure = url.protocol === "https:";
  if (request.method === "GET") {
    const caller = await authenticate(kv, request);
    return json({ user: caller.user, csrf: caller.csrf ?? null });
  }
  if (request.method === "POST") {
    // Login CSRF: another site must not sign the browser in as someone else.
    const origin = request.headers.get("origin");
    if (origin !== null && origin !== url.origin) {
      throw new HttpError(403, "Cannot accept a request from another origin");
    }
    const body = await readJsonObject(request);
    const name = stringField(body, "name");
    const { id, csrf } = await startSession(kv, name, stringField(body, "token"));
    return json({ user: name, csrf }, 200, { "set-cookie": sessionCookie(id, secure) });
  }
  if (request.method === "DELETE") {
    const id = cookieOf(request, SESSION_COOKIE);
    if (id !== undefined) {
      const caller = await authenticate(kv, request);
      checkCsrf(request, caller.csrf ?? "");
      await endSession(kv, id);
    }
    return new Response(null, {
      status: 204,
      headers: { "set-cookie": sessionCookie("", secure) },
    });
  }
  return fail(405, `Cannot ${request.method} /session`);
}

const staticCache = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

async function serveStatic(file: string, method: string): Promise<Response> {
  let bytes = staticCache.get(file);
  if (bytes === undefined) {
    bytes = Deno.readFile(new URL(`./static/${file}`, import.meta.url));
    staticCache.set(file, bytes);
  }
  const body = await bytes;
  return new Response(method === "HEAD" ? null : body, {
    headers: {
      "content-type": STATIC_TYPES[file.split(".").pop()!]!,
      "content-security-policy": PAGE_CSP,
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
      "cache-control": "no-cache",
    },
  });
}
