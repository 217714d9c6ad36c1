/**
 * Stand-ins for `@std/encoding/hex` and `@std/encoding/base64url`, for running
 * kv-toolbox's code without JSR.
 *
 * @module
 */

function bytesOf(data: string | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return new Uint8Array(data);
}

/** Lower-case hex of the bytes (or of a string's UTF-8). */
export function encodeHex(data: string | ArrayBuffer | ArrayBufferView): string {
  return Array.from(bytesOf(data), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Bytes of a hex string; throws a `RangeError` on odd length or a non-hex digit. */
export function decodeHex(text: string): Uint8Array<ArrayBuffer> {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new RangeError("Cannot decode hex: odd length or a character that is not a hex digit");
  }
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** Unpadded base64url of the bytes (or of a string's UTF-8). */
export function encodeBase64Url(data: string | ArrayBuffer | ArrayBufferView): string {
  let binary = "";
  for (const byte of bytesOf(data)) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Bytes of base64url text (padding optional); throws a `TypeError` on other characters. */
export function decodeBase64Url(text: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(text)) {
    throw new TypeError("Cannot decode base64url: a character outside the alphabet");
  }
  const base64 = text.replace(/=+$/, "").replaceAll("-", "+").replaceAll("_", "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}
