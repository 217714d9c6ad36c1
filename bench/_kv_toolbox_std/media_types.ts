/**
 * Stand-in for `@std/media-types/extension`, for running kv-toolbox's code
 * without JSR: a small table of common media types instead of the full database.
 *
 * @module
 */

const EXTENSIONS: Record<string, string> = {
  "application/json": "json",
  "application/octet-stream": "bin",
  "application/pdf": "pdf",
  "application/zip": "zip",
  "audio/mpeg": "mp3",
  "image/gif": "gif",
  "image/jpeg": "jpg",
  "image/png": "png",
  "image/svg+xml": "svg",
  "image/webp": "webp",
  "text/css": "css",
  "text/csv": "csv",
  "text/html": "html",
  "text/javascript": "js",
  "text/plain": "txt",
  "video/mp4": "mp4",
};

/** The usual file extension of a media type (parameters ignored), or `undefined`. */
export function extension(type: string): string | undefined {
  const essence = type.split(";")[0]?.trim().toLowerCase() ?? "";
  return EXTENSIONS[essence];
}
