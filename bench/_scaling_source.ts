/**
 * Benchmark input: a stream of 1 MiB pieces of random-looking bytes, cheap
 * enough to generate that the source never limits the measured throughput.
 *
 * @module
 */

/** One mebibyte. */
export const MIB = 1024 * 1024;
/** Bytes per piece the source stream yields. */
export const PIECE_BYTES = MIB;
/** Most bytes `crypto.getRandomValues` fills in one call. */
const RANDOM_FILL_MAX = 65_536;
/** Bytes of the piece counter stamped at the start of every piece. */
const STAMP_BYTES = 4;

/** One piece of random bytes, generated once and copied for every piece. */
export function randomTemplate(): Uint8Array {
  const template = new Uint8Array(PIECE_BYTES);
  for (let offset = 0; offset < PIECE_BYTES; offset += RANDOM_FILL_MAX) {
    crypto.getRandomValues(template.subarray(offset, offset + RANDOM_FILL_MAX));
  }
  return template;
}

/**
 * A stream of `totalBytes` bytes in pieces of {@linkcode PIECE_BYTES}: each a
 * fresh copy of `template` with its index stamped in. A fresh copy, not the
 * template itself: the library keeps views of incoming pieces until their
 * atomic commits, so reusing one buffer would corrupt chunks in flight.
 */
export function sourceStream(
  totalBytes: number,
  template: Uint8Array,
): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream({
    pull(controller) {
      const offset = index * PIECE_BYTES;
      if (offset >= totalBytes) return controller.close();
      const piece = template.slice(0, Math.min(PIECE_BYTES, totalBytes - offset));
      new DataView(piece.buffer).setUint32(0, index++);
      controller.enqueue(piece);
    },
  });
}

/**
 * Checks that `bytes` is what {@linkcode sourceStream} produced for
 * `totalBytes`: its length and every piece's stamp.
 *
 * @throws {Error} on a mismatch.
 */
export function verifySource(bytes: Uint8Array, totalBytes: number): void {
  if (bytes.length !== totalBytes) {
    throw new Error(`read ${bytes.length} bytes, expected ${totalBytes}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let index = 0; index * PIECE_BYTES + STAMP_BYTES <= totalBytes; index++) {
    const stamp = view.getUint32(index * PIECE_BYTES);
    if (stamp !== index) throw new Error(`piece ${index} carries stamp ${stamp}`);
  }
}
