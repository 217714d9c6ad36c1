/**
 * Small HTTP helpers shared by the key service and the documents app: JSON
 * answers, errors as `{ "error": "Cannot …" }`, bounded JSON bodies, and a
 * listening line the tests and the launcher read.
 *
 * @module
 */

/** Largest JSON request body either service reads (the key service's are about 200 bytes). */
export const JSON_BODY_MAX = 16 * 1024;

/**
 * A JSON response.
 *
 * @param body What to serialize.
 * @param status The HTTP status.
 * @param headers Extra headers.
 * @returns The response, `no-store` (answers carry secrets or private lists).
 */
export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  const response = Response.json(body, { status, headers });
  response.headers.set("cache-control", "no-store");
  response.headers.set("x-content-type-options", "nosniff");
  return response;
}

/**
 * An error response with one clear message.
 *
 * @param status The HTTP status.
 * @param message What failed and why, starting with "Cannot".
 * @param headers Extra headers.
 * @returns `{ "error": message }` with that status.
 */
export function fail(status: number, message: string, headers: HeadersInit = {}): Response {
  return json({ error: message }, status, headers);
}

/** A request the handler refuses with a status and a message. */
export class HttpError extends Error {
  /** The status to answer with. */
  readonly status: number;

  /**
   * @param status The HTTP status.
   * @param message What failed, starting with "Cannot".
   * @param options The cause, if any.
   */
  constructor(status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HttpError";
    this.status = status;
  }
}

/**
 * Reads a JSON object body of at most {@linkcode JSON_BODY_MAX} bytes.
 *
 * @param request The request.
 * @returns The parsed object.
 * @throws {HttpError} 413 for a larger body, 400 for one that is not a JSON object.
 */
export async function readJsonObject(request: Request): Promise<Record<string, unknown>> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  // A huge declared body is refused before a byte of it is read (memory exhaustion).
  if (declared > JSON_BODY_MAX) throw new HttpError(413, "Cannot read the body: it is too large");
  const bytes = await readBounded(request.body, JSON_BODY_MAX);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new HttpError(400, "Cannot read the body: it is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "Cannot read the body: expected a JSON object");
  }
  return value as Record<string, unknown>;
}

async function readBounded(
  body: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<Uint8Array> {
  if (body === null) return new Uint8Array();
  const parts: Uint8Array[] = [];
  let length = 0;
  for await (const part of body) {
    length += part.length;
    // A chunked body without Content-Length is bounded as it arrives.
    if (length > max) throw new HttpError(413, "Cannot read the body: it is too large");
    parts.push(part);
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * A string field of a JSON body.
 *
 * @param body The parsed body.
 * @param name The field.
 * @returns Its value.
 * @throws {HttpError} 400 when it is missing or not a string.
 */
export function stringField(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== "string") {
    throw new HttpError(400, `Cannot read the body: "${name}" must be a string`);
  }
  return value;
}

/** The line a server prints once it listens; launchers and tests wait for it. */
export const LISTENING_PREFIX = "Listening on ";

/**
 * Prints the listening line for `addr`.
 *
 * @param label Which server.
 * @param addr Where it listens.
 */
export function printListening(label: string, addr: Deno.NetAddr): void {
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  console.log(`${label}: ${LISTENING_PREFIX}http://${host}:${addr.port}/`);
}
