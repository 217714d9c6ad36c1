/**
 * What the Deno and Node sides of the cross-runtime check share: where each
 * side stores its values, how a structured value is described in a JSON
 * manifest and rebuilt from it, and SHA-256 in hex. Plain JavaScript, so Node
 * runs it as is and Deno imports it.
 *
 * @module
 */

import { Buffer } from "node:buffer";

/** Keys the Deno side writes under, in `deno.sqlite`. */
export const DENO_KEYS = Object.freeze({
  blob: ["from-deno", "blob"],
  plain: ["from-deno", "plain"],
  file: ["from-deno", "file"],
  value: ["from-deno", "value"],
});

/** Keys the Node side writes under, in `node.sqlite`. */
export const NODE_KEYS = Object.freeze({
  blob: ["from-node", "blob"],
  file: ["from-node", "file"],
  value: ["from-node", "value"],
});

/** Environment variable that carries the shared key (a JWK as JSON) to Node. */
export const KEY_VARIABLE = "KVCRYPT_NODE_CHECK_KEY";

/**
 * @typedef {object} ValueDescription JSON form of a structured value.
 * @property {string} text
 * @property {string} big A bigint in decimal.
 * @property {string} bytes Hex.
 * @property {number} at A Date in ms since the epoch.
 * @property {[string, number][]} entries A Map's entries.
 */

/**
 * A fresh random description of a structured value with the types V8's
 * serializer treats specially (bigint, Uint8Array, Date, Map).
 *
 * @returns {ValueDescription}
 */
export function describeRandomValue() {
  const random = crypto.getRandomValues(new Uint8Array(16));
  const hex = Buffer.from(random).toString("hex");
  return {
    text: `héllo ${hex.slice(0, 8)} 🙂`,
    big: (BigInt("0x" + hex) * -3n).toString(),
    bytes: hex,
    at: Date.now() - random[0] * 1000,
    entries: [["a", random[1]], ["b", random[2]]],
  };
}

/**
 * The structured value a description stands for.
 *
 * @param {ValueDescription} description
 */
export function valueOf(description) {
  return {
    text: description.text,
    big: BigInt(description.big),
    bytes: new Uint8Array(Buffer.from(description.bytes, "hex")),
    at: new Date(description.at),
    map: new Map(description.entries),
  };
}

/**
 * SHA-256 of bytes, in lower-case hex.
 *
 * @param {Uint8Array} bytes
 * @returns {Promise<string>}
 */
export async function sha256Hex(bytes) {
  return Buffer.from(await crypto.subtle.digest("SHA-256", bytes)).toString("hex");
}

/**
 * `size` random bytes (`crypto.getRandomValues` fills at most 65,536 at a time).
 *
 * @param {number} size
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function randomBytes(size) {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65_536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(size, offset + 65_536)));
  }
  return bytes;
}
