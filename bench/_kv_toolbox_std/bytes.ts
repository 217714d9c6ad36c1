/**
 * Stand-in for `@std/bytes/concat`, for running kv-toolbox's code without JSR.
 *
 * @module
 */

/** A new array holding the bytes of `buffers` one after the other. */
export function concat(buffers: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(buffers.reduce((sum, buffer) => sum + buffer.length, 0));
  let offset = 0;
  for (const buffer of buffers) {
    out.set(buffer, offset);
    offset += buffer.length;
  }
  return out;
}
