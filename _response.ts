/**
 * `getAsResponse`: a stored blob served like a static file (RFC 9110). The
 * request's validators and Range are evaluated against the authenticated
 * record, then the body streams through the one chunk reader.
 *
 * @module
 */

import { metaOfRecord } from "./_meta.ts";
import { openEntry, type ReadTarget } from "./_chunk_reader.ts";
import { streamRecord } from "./_read_protocol.ts";
import type { BlobMeta, ResponseOptions } from "./_types.ts";

/** The type sent when none was stored (RFC 9110 section 8.3). */
const DEFAULT_CONTENT_TYPE = "application/octet-stream";

/** Latest time an IMF-fixdate can show: its year has exactly four digits. */
const HTTP_DATE_MAX_MS = Date.UTC(10_000, 0, 1) - 1;

/** A satisfiable byte range: `start` inclusive, `end` exclusive. */
export interface SatisfiableRange {
  /** First byte. */
  start: number;
  /** One past the last byte. */
  end: number;
}

/** What a `Range` field asks of a blob of a given size. */
export type RangeRequest =
  /** No range applies: serve the whole blob (absent, malformed, several ranges, other unit). */
  | null
  /** Asks only for bytes past the end: 416. */
  | "unsatisfiable"
  | SatisfiableRange;

/** The status and byte range to answer with. */
export type Plan =
  | { status: 304 }
  | { status: 416 }
  | { status: 200 | 206; start: number; end: number; body: boolean };

/** The strong ETag of a blob version: its id, which every write changes and `rewrap` keeps. */
export function entityTag(meta: BlobMeta): string {
  return `"${meta.id}"`;
}

/** One entity-tag (RFC 9110 section 8.8.3): optional `W/`, then a quoted opaque tag. */
const ENTITY_TAG = /(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"/y;

/** An entity-tag as parsed: its weakness and its opaque part (without quotes). */
export interface EntityTag {
  /** Marked `W/`. */
  weak: boolean;
  /** The characters between the quotes. */
  opaque: string;
}

/**
 * The entity-tags of an `If-None-Match` or `If-Range` field, `"*"` for the
 * wildcard, or null when the field does not parse (an element that is not a
 * quoted tag, two tags without a comma, or no tag at all). Empty list
 * elements are allowed (RFC 9110 section 5.6.1).
 */
export function parseEntityTags(field: string): "*" | EntityTag[] | null {
  if (field.trim() === "*") return "*";
  const tags: EntityTag[] = [];
  let separated = true;
  let position = 0;
  while (position < field.length) {
    const char = field[position];
    if (char === " " || char === "\t" || char === ",") {
      if (char === ",") separated = true;
      position++;
      continue;
    }
    if (!separated) return null;
    ENTITY_TAG.lastIndex = position;
    const match = ENTITY_TAG.exec(field);
    if (match === null) return null;
    tags.push({ weak: match[1] !== undefined, opaque: match[2]! });
    position = ENTITY_TAG.lastIndex;
    separated = false;
  }
  return tags.length > 0 ? tags : null;
}

/**
 * Whether an `If-None-Match` field matches the current ETag: `*`, or any
 * listed tag by weak comparison (RFC 9110 section 13.1.2). A field that does
 * not parse matches nothing.
 */
export function noneMatchHits(field: string, etag: string): boolean {
  const tags = parseEntityTags(field);
  if (tags === "*") return true;
  return tags !== null && tags.some((tag) => `"${tag.opaque}"` === etag);
}

/**
 * Whether an `If-Range` field lets the Range apply: only the current ETag,
 * compared strongly (RFC 9110 section 13.1.5). A date never does: a File's
 * lastModified is set by whoever wrote it and survives a rewrite, so it is a
 * weak validator, and a range of it could splice two versions.
 */
export function ifRangeHolds(field: string, etag: string): boolean {
  const tags = parseEntityTags(field);
  return Array.isArray(tags) && tags.length === 1 && !tags[0]!.weak &&
    `"${tags[0]!.opaque}"` === etag;
}

/** `bytes=first-last`, `bytes=first-` or `bytes=-suffix`: one byte-range-spec. */
const SINGLE_RANGE = /^bytes[ \t]*=[ \t]*(?:(\d+)-(\d*)|-(\d+))[ \t]*$/i;

/**
 * What a `Range` field (RFC 9110 section 14.1.2) asks of a blob of `size`
 * bytes, converted from HTTP's inclusive last byte to an exclusive `end`.
 * Several ranges are answered with the whole blob (allowed by section 14.2):
 * a multipart body costs more than it saves for chunks this large.
 */
export function parseRange(field: string, size: number): RangeRequest {
  const match = SINGLE_RANGE.exec(field);
  if (match === null) return null;
  const [, first, last, suffix] = match;
  if (suffix !== undefined) {
    const length = Number(suffix);
    if (length === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - length), end: size };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return null; // An invalid range-spec: ignored.
  if (start >= size) return "unsatisfiable";
  const end = last === "" ? size : Math.min(size, Number(last) + 1);
  return { start, end };
}

/** A time as an IMF-fixdate (RFC 9110 section 5.6.7), or undefined if it has none. */
export function httpDate(ms: number | undefined): string | undefined {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0 || ms > HTTP_DATE_MAX_MS) {
    return undefined;
  }
  return new Date(Math.floor(ms)).toUTCString();
}

/** Printable ASCII is kept in the quoted `filename` fallback; any other character becomes one `_`. */
const FALLBACK_UNSAFE = /[^\x20-\x7e]|["\\%]/gu;

/** Characters `encodeURIComponent` leaves that are not RFC 8187 attr-chars. */
const NOT_ATTR_CHAR = /['()*]/g;

/**
 * `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266, RFC 8187). The
 * quoted fallback keeps printable ASCII only and turns quotes, backslashes and
 * `%` into `_`; `filename*` carries the exact name percent-encoded.
 */
export function contentDisposition(name: string): string {
  if (name === "") return "attachment";
  // Stops a file name from closing the quoted string or adding header lines or parameters.
  const fallback = name.replace(FALLBACK_UNSAFE, "_");
  const encoded = encodeURIComponent(name.toWellFormed()).replace(
    NOT_ATTR_CHAR,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/** A MIME type safe to send as a header value. */
const SAFE_TYPE = /^[\x21-\x7e][\x20-\x7e]*$/;

/** The Content-Type to send for a stored type. */
export function contentType(type: string): string {
  // Stops a type edited into a plain record from breaking or injecting header lines.
  return SAFE_TYPE.test(type) ? type : DEFAULT_CONTENT_TYPE;
}

/**
 * Sent with every response about a blob: browsers must not guess a type
 * (a sniffed "text/plain" upload could otherwise run as HTML).
 */
export const NOSNIFF = "nosniff";

/**
 * The default Content-Security-Policy of a response about a blob, as
 * user-content hosts send: a document opened from it runs no script, loads
 * nothing but itself (an image or video document shows its own URL), and
 * lives in a unique origin (`sandbox`), so stored content cannot act in
 * the app's origin. The caller's `headers` may replace it.
 */
export const SANDBOX_POLICY =
  "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox";

/** Passive types by their top-level type: a browser shows them without running anything. */
const PASSIVE_TOP_LEVEL = new Set(["image", "audio", "video"]);

/**
 * One media type (RFC 9110 section 8.3.1): `type/subtype` of token
 * characters, then parameters; a comma (a list of types) is no token character.
 */
const SINGLE_MEDIA_TYPE =
  /^[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]*(;[^,]*)?$/;

/** Passive types by their essence. */
const PASSIVE_TYPES = new Set(["application/pdf", "text/plain", "application/octet-stream"]);

/**
 * Whether a browser shows `type` without running or rendering it as a
 * document: images other than SVG (and any XML-based image), audio, video,
 * PDF, plain text and raw bytes. Matched case-insensitively, parameters
 * ignored. Every other type (HTML, XHTML, SVG, XML, JavaScript, unknown
 * ones) may carry script.
 */
export function isPassiveType(type: string): boolean {
  // Stops "image/png, text/html": browsers take the last type of a list, so a
  // list (or anything but one type and its parameters) is never passive.
  if (!SINGLE_MEDIA_TYPE.test(type)) return false;
  const essence = type.split(";", 1)[0]!.trim().toLowerCase();
  if (PASSIVE_TYPES.has(essence)) return true;
  const slash = essence.indexOf("/");
  const top = essence.slice(0, slash);
  const sub = essence.slice(slash + 1);
  if (slash <= 0 || sub === "" || !PASSIVE_TOP_LEVEL.has(top)) return false;
  // Stops image/svg+xml (or another XML image) from running script as a document.
  return !sub.includes("svg") && !sub.includes("xml");
}

/** The Last-Modified of a blob: only a File has a modification time. */
function lastModifiedOf(meta: BlobMeta): number | undefined {
  return "kind" in meta && meta.kind === "file" ? meta.lastModified : undefined;
}

/**
 * Decides the status and range for `request` (RFC 9110 section 13.2.2):
 * If-None-Match first, then Range with If-Range. Methods other than GET and HEAD get the whole blob with no
 * condition evaluated: what they mean is the caller's business.
 */
export function planResponse(request: Request | undefined, meta: BlobMeta): Plan {
  const whole = { status: 200 as const, start: 0, end: meta.size, body: true };
  if (request === undefined) return whole;
  const { method, headers } = request;
  if (method !== "GET" && method !== "HEAD") return whole;
  const etag = entityTag(meta);
  // Only the ETag decides a 304: a File's lastModified is chosen by its writer,
  // so a newer version may carry an older date (If-Modified-Since is ignored).
  const noneMatch = headers.get("if-none-match");
  if (noneMatch !== null && noneMatchHits(noneMatch, etag)) return { status: 304 };
  if (method === "HEAD") return { ...whole, body: false };
  // Range is defined for GET only (RFC 9110 section 14.2).
  const rangeField = headers.get("range");
  if (rangeField === null) return whole;
  const ifRange = headers.get("if-range");
  if (ifRange !== null && !ifRangeHolds(ifRange, etag)) return whole;
  const range = parseRange(rangeField, meta.size);
  if (range === null) return whole;
  if (range === "unsatisfiable") return { status: 416 };
  return { status: 206, start: range.start, end: range.end, body: true };
}

/**
 * The headers of a response about a stored blob, with the caller's `extra`
 * replacing any of the same name.
 */
export function blobHeaders(
  meta: BlobMeta,
  plan: Plan,
  options: Pick<ResponseOptions, "headers" | "contentDisposition" | "allowActiveContent">,
): Headers {
  const headers = new Headers({
    etag: entityTag(meta),
    "x-content-type-options": NOSNIFF,
    "content-security-policy": SANDBOX_POLICY,
  });
  if (plan.status !== 304) headers.set("accept-ranges", "bytes");
  if (plan.status === 416) {
    headers.set("content-range", `bytes */${meta.size}`);
  } else if (plan.status !== 304) {
    const type = "type" in meta ? meta.type : "";
    headers.set("content-type", contentType(type));
    headers.set("content-length", String(plan.end - plan.start));
    if (plan.status === 206) {
      headers.set("content-range", `bytes ${plan.start}-${plan.end - 1}/${meta.size}`);
    }
    const lastModified = httpDate(lastModifiedOf(meta));
    if (lastModified !== undefined) headers.set("last-modified", lastModified);
    const name = nameOf(meta);
    if (name !== undefined && options.contentDisposition !== false) {
      headers.set("content-disposition", contentDisposition(name));
    }
  }
  const extra = new Headers(options.headers);
  for (const name of extra.keys()) headers.delete(name);
  for (const [name, value] of extra) headers.append(name, value);
  const sentType = headers.get("content-type");
  // Stops stored HTML, SVG or script from opening as a page of the app's
  // origin: such types download unless the caller opts in (or sets the field).
  if (
    sentType !== null && !isPassiveType(sentType) && !options.allowActiveContent &&
    !extra.has("content-disposition")
  ) {
    headers.set("content-disposition", contentDisposition(nameOf(meta) ?? ""));
  }
  return headers;
}

/** The name of a stored File, if the blob is one. */
function nameOf(meta: BlobMeta): string | undefined {
  return "kind" in meta && meta.kind === "file" ? meta.name : undefined;
}

/** Whether the answer is sure to be the whole body (no HEAD, Range or possible 304). */
function wholeBodyCertain(request: Request | undefined): boolean {
  if (request === undefined) return true;
  const { method, headers } = request;
  return method !== "HEAD" && !headers.has("range") && !headers.has("if-none-match");
}

/** Reads (and authenticates) the record at the target, then answers `options.request`. */
export async function respond(target: ReadTarget, options: ResponseOptions): Promise<Response> {
  // A certain whole-body download reads from chunk 0: fetch it during authentication.
  const { record } = await openEntry(target, { prefetch: wholeBodyCertain(options.request) });
  if (record === null) {
    const init = options.notFoundHeaders === undefined ? {} : { headers: options.notFoundHeaders };
    return new Response(options.notFoundBody ?? null, { status: 404, ...init });
  }
  const meta = metaOfRecord(record);
  const plan = planResponse(options.request, meta);
  const headers = blobHeaders(meta, plan, options);
  const body = "body" in plan && plan.body
    ? streamRecord(target, record, plan.start, plan.end)
    : null;
  return new Response(body, { status: plan.status, headers });
}
