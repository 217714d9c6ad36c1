/**
 * Stand-in for `@std/crypto/timing-safe-equal`, for running kv-toolbox's code
 * without JSR.
 *
 * @module
 */
import { constantTimeEqual } from "../../_bytes.ts";

/** Whether two byte sequences are equal, compared without an early exit. */
export function timingSafeEqual(
  a: ArrayBufferView | ArrayBufferLike,
  b: ArrayBufferView | ArrayBufferLike,
): boolean {
  const view = (x: ArrayBufferView | ArrayBufferLike) =>
    ArrayBuffer.isView(x)
      ? new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
      : new Uint8Array(x);
  return constantTimeEqual(view(a), view(b));
}
