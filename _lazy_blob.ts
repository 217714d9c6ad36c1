/**
 * A Blob or File whose bytes are not in memory: its name, type,
 * lastModified and size are given, and `stream()` opens a fresh stream from
 * a callback. It lets `set` keep a File's metadata while the bytes stream
 * from the store (a File made from parts would hold them all).
 *
 * @module
 */

/** What a lazy Blob or File says about itself. */
export interface LazyBlobInit {
  /** `"blob"` or `"file"`. */
  kind: "blob" | "file";
  /** The MIME type. */
  type: string;
  /** The File's name (for `"file"`). */
  name?: string | undefined;
  /** The File's lastModified (for `"file"`). */
  lastModified?: number | undefined;
  /** The number of bytes `open()` delivers, when known. */
  size?: number | undefined;
}

/** Defines what every lazy Blob or File shares: its size and its byte readers. */
function makeLazy(
  blob: Blob,
  size: number | undefined,
  open: () => ReadableStream<Uint8Array>,
): void {
  const read = () => new Response(open());
  if (size !== undefined) Object.defineProperty(blob, "size", { value: size });
  Object.defineProperties(blob, {
    stream: { value: open },
    arrayBuffer: { value: () => read().arrayBuffer() },
    bytes: { value: async () => new Uint8Array(await read().arrayBuffer()) },
    text: { value: () => read().text() },
    slice: {
      value: () => {
        throw new TypeError("Cannot slice a Blob whose bytes stream from the store");
      },
    },
  });
}

/**
 * A Blob (or File) with the given metadata whose bytes come from `open()`,
 * called again for every read.
 *
 * @param init The metadata and size.
 * @param open Opens a new stream of the bytes.
 * @returns The Blob or File.
 */
export function lazyBlob(init: LazyBlobInit, open: () => ReadableStream<Uint8Array>): Blob {
  const blob = init.kind === "file"
    ? new File([], init.name ?? "", {
      type: init.type,
      ...(init.lastModified === undefined ? {} : { lastModified: init.lastModified }),
    })
    : new Blob([], { type: init.type });
  makeLazy(blob, init.size, open);
  return blob;
}
