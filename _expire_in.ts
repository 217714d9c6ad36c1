/**
 * The one check of a caller's `expireIn`, for blobs and `cryptoKv` values
 * alike.
 *
 * @module
 */

import { KV_DEADLINE_MAX } from "./_limits.ts";

/**
 * Checks a caller's `expireIn` and returns it in whole milliseconds, as Deno
 * KV takes them, or undefined when it is not given.
 *
 * @param expireIn The option as the caller gave it.
 * @param keyText The key as printed in messages.
 * @param outliveMs How much longer than the value the write's other entries
 * live (a blob's chunks); their deadline must be one Deno KV accepts too.
 * @throws {TypeError} when it is not a number.
 * @throws {RangeError} when it is not positive, or the deadline (with
 * `outliveMs`) is later than Deno KV accepts.
 */
export function checkExpireIn(
  expireIn: unknown,
  keyText: string,
  outliveMs = 0,
): number | undefined {
  if (expireIn === undefined) return undefined;
  if (typeof expireIn !== "number") {
    throw new TypeError(`Cannot store ${keyText}: expireIn must be a number of milliseconds`);
  }
  const whole = Math.ceil(expireIn);
  // Deno KV refuses a later deadline only when it commits: refuse it before anything is written.
  if (!(expireIn > 0) || !(Date.now() + whole + outliveMs <= KV_DEADLINE_MAX)) {
    throw new RangeError(
      `Cannot store ${keyText}: expireIn must be a positive number of milliseconds that Deno KV accepts`,
    );
  }
  return whole;
}
