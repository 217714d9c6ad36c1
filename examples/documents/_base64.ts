/**
 * Base64 for the JSON bodies of the key service protocol (no runtime
 * dependency; `Uint8Array.fromBase64` is not in every runtime yet).
 *
 * @module
 */

/**
 * Encodes bytes as standard base64 with padding.
 *
 * @param bytes The bytes.
 * @returns Their base64 text.
 */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  // In slices: String.fromCharCode takes its arguments on the stack.
  const SLICE = 0x8000;
  for (let i = 0; i < bytes.length; i += SLICE) {
    binary += String.fromCharCode(...bytes.subarray(i, i + SLICE));
  }
  return btoa(binary);
}

/**
 * Decodes standard base64.
 *
 * @param text The base64 text.
 * @returns The bytes.
 * @throws {SyntaxError} if `text` is not base64.
 */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    throw new SyntaxError("Cannot decode base64: the text is not base64");
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
