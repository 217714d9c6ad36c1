/**
 * Users, API tokens and browser sessions of the documents app. Only SHA-256
 * hashes of tokens and session ids are stored: a stolen KV file holds no
 * credential. Real user authentication (passwords, OAuth, SSO) is the
 * deployer's to choose; this is the minimum the example needs.
 *
 * @module
 */

import { toBase64 } from "./_base64.ts";
import { HttpError } from "./_http.ts";
import { isUserName, USER_NAME_RULE } from "./_names.ts";

/** Random bytes in an API token or a session id: 256 bits, beyond guessing. */
const TOKEN_BYTES = 32;
/** How long a browser session lasts: a working day. */
export const SESSION_MS = 12 * 60 * 60 * 1000;
/** The session cookie's name. */
export const SESSION_COOKIE = "documents_session";
/** The header the page sends its CSRF token in. */
export const CSRF_HEADER = "x-csrf-token";

/** A user record. */
export interface UserRecord {
  /** The user name (also the key id in the key service). */
  name: string;
  /** When the user was added, ms since the epoch. */
  created: number;
}

interface SessionRecord {
  user: string;
  /** The CSRF token the page must echo on state-changing requests. */
  csrf: string;
}

/** Who made a request, and how. */
export interface Caller {
  /** The user name. */
  user: string;
  /** The session's CSRF token when the request came with the session cookie. */
  csrf: string | undefined;
}

const userKey = (name: string): Deno.KvKey => ["users", name];
const tokenKey = (hash: string): Deno.KvKey => ["tokens", hash];
const sessionKey = (hash: string): Deno.KvKey => ["sessions", hash];

function randomToken(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
  return prefix + toBase64(bytes).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

async function hashOf(token: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)),
  );
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Adds a user and returns its API token (shown once; only its hash is kept).
 *
 * @param kv The app's store.
 * @param name The new user's name.
 * @returns The token.
 * @throws {TypeError} for an invalid name.
 * @throws {Error} when the user exists.
 */
export async function addUser(kv: Deno.Kv, name: string): Promise<string> {
  if (!isUserName(name)) {
    throw new TypeError(`Cannot add user "${name}": a name is ${USER_NAME_RULE}`);
  }
  const token = randomToken("doc_");
  const hash = await hashOf(token);
  const record: UserRecord = { name, created: Date.now() };
  const result = await kv.atomic()
    .check({ key: userKey(name), versionstamp: null })
    .set(userKey(name), record)
    .set(tokenKey(hash), name)
    .commit();
  if (!result.ok) throw new Error(`Cannot add user "${name}": the user exists`);
  return token;
}

/**
 * Whether a user exists.
 *
 * @param kv The app's store.
 * @param name A name.
 * @returns True when it is a user.
 */
export async function userExists(kv: Deno.Kv, name: string): Promise<boolean> {
  return isUserName(name) && (await kv.get(userKey(name))).value !== null;
}

/**
 * Every user, by name.
 *
 * @param kv The app's store.
 * @returns The users.
 */
export async function listUsers(kv: Deno.Kv): Promise<UserRecord[]> {
  const users: UserRecord[] = [];
  for await (const entry of kv.list<UserRecord>({ prefix: ["users"] })) users.push(entry.value);
  return users;
}

/**
 * The user an API token belongs to.
 *
 * @param kv The app's store.
 * @param token The presented token.
 * @returns The user name, or undefined.
 */
export async function userOfToken(kv: Deno.Kv, token: string): Promise<string | undefined> {
  // Looked up by hash: the lookup's timing depends on the hash, not on how
  // much of a guessed token matches a real one (timing attack).
  const entry = await kv.get<string>(tokenKey(await hashOf(token)));
  return entry.value ?? undefined;
}

/**
 * Starts a browser session for a user who presented a valid token.
 *
 * @param kv The app's store.
 * @param name The user name typed in.
 * @param token The token typed in.
 * @returns The session id (for the cookie) and its CSRF token.
 * @throws {HttpError} 401 when the name and token do not match.
 */
export async function startSession(
  kv: Deno.Kv,
  name: string,
  token: string,
): Promise<{ id: string; csrf: string }> {
  if ((await userOfToken(kv, token)) !== name) {
    throw new HttpError(401, "Cannot sign in: unknown user or wrong token");
  }
  const id = randomToken("");
  const csrf = randomToken("");
  const record: SessionRecord = { user: name, csrf };
  await kv.set(sessionKey(await hashOf(id)), record, { expireIn: SESSION_MS });
  return { id, csrf };
}

/**
 * Ends a session.
 *
 * @param kv The app's store.
 * @param id The session id from the cookie.
 */
export async function endSession(kv: Deno.Kv, id: string): Promise<void> {
  await kv.delete(sessionKey(await hashOf(id)));
}

/**
 * The value of a cookie in a request.
 *
 * @param request The request.
 * @param name The cookie.
 * @returns Its value, or undefined.
 */
export function cookieOf(request: Request, name: string): string | undefined {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=");
  }
  return undefined;
}

/**
 * Authenticates a request by its bearer token or, for the web page, its
 * session cookie; a state-changing request with the cookie must also carry
 * the session's CSRF token and come from the app's own origin.
 *
 * @param kv The app's store.
 * @param request The request.
 * @returns The caller.
 * @throws {HttpError} 401 without valid credentials, 403 on a CSRF failure.
 */
export async function authenticate(kv: Deno.Kv, request: Request): Promise<Caller> {
  const header = request.headers.get("authorization");
  if (header !== null) {
    const token = header.startsWith("Bearer ") ? header.slice(7).trim() : "";
    const user = token === "" ? undefined : await userOfToken(kv, token);
    if (user === undefined) throw unauthorized();
    return { user, csrf: undefined };
  }
  const id = cookieOf(request, SESSION_COOKIE);
  if (id === undefined || id === "") throw unauthorized();
  const session = (await kv.get<SessionRecord>(sessionKey(await hashOf(id)))).value;
  if (session === null) throw unauthorized();
  if (!["GET", "HEAD"].includes(request.method)) checkCsrf(request, session.csrf);
  return { user: session.user, csrf: session.csrf };
}

function unauthorized(): HttpError {
  return new HttpError(401, "Cannot authenticate: send Authorization: Bearer <token>");
}

/**
 * Checks that a cookie-authenticated request comes from the page itself.
 *
 * @param request The request.
 * @param csrf The session's CSRF token.
 * @throws {HttpError} 403 when it does not.
 */
export function checkCsrf(request: Request, csrf: string): void {
  // Cross-site request forgery: another site can make the browser send the
  // cookie, but cannot read the token the page got, nor fake Origin.
  const origin = request.headers.get("origin");
  if (origin !== null && origin !== new URL(request.url).origin) {
    throw new HttpError(403, "Cannot accept a request from another origin");
  }
  const given = request.headers.get(CSRF_HEADER) ?? "";
  let diff = given.length ^ csrf.length;
  for (let i = 0; i < csrf.length; i++) diff |= csrf.charCodeAt(i) ^ given.charCodeAt(i);
  if (diff !== 0) {
    throw new HttpError(403, "Cannot accept the request: the CSRF token is missing or wrong");
  }
}

/**
 * The Set-Cookie value of a session.
 *
 * @param id The session id, or "" to clear the cookie.
 * @param secure Whether the page is served over HTTPS.
 * @returns The header value.
 */
export function sessionCookie(id: string, secure: boolean): string {
  const maxAge = id === "" ? 0 : SESSION_MS / 1000;
  // HttpOnly: no script (an XSS) can read the session; SameSite=Strict: no
  // other site's page sends it along.
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}` +
    (secure ? "; Secure" : "");
}
