/**
 * The documents: each one a kvcrypt blob whose recipients are the key
 * service wrappers of its owner and readers, plus an index entry (name,
 * size, type, owner, readers) committed in the same atomic as the blob's
 * record, so the index never names a version that is not stored.
 *
 * KV layout of the app:
 *
 * | key                   | value                                           |
 * | --------------------- | ----------------------------------------------- |
 * | `["blobs", id]`       | the kvcrypt record (chunks under `__kvcrypt__`) |
 * | `["docs", id]`        | {@linkcode DocumentInfo} (not sealed)           |
 * | `["access", user, id]`| `true`: the user owns or may read the document  |
 *
 * @module
 */

import { getAsResponse, getAsStream, remove, rewrap, stage } from "../../mod.ts";
import type { KeyWrapper, StagedBlob } from "../../mod.ts";
import { userExists } from "./_auth.ts";
import { toBase64 } from "./_base64.ts";
import { HttpError } from "./_http.ts";
import type { KeyService } from "./_key_wrapper.ts";

/** A document as the API shows it. */
export interface DocumentInfo {
  /** Random id, 22 characters of base64url, never starting with "-". */
  id: string;
  /** File name. */
  name: string;
  /** Size in bytes. */
  size: number;
  /** Content type ("" when none was sent). */
  type: string;
  /** Who uploaded it. */
  owner: string;
  /** Who else may read it. */
  sharedWith: string[];
  /** When its content was last written, ms since the epoch. */
  modified: number;
}

/** Random bytes in a document id: 128 bits, so ids cannot be guessed. */
const ID_BYTES = 16;
/** What an id looks like (base64url of 16 bytes). */
const ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;
/** Readers a document can have: kvcrypt's 16 recipients, less the owner. */
export const READERS_MAX = 16 - 1;
/** Longest file name kept (kvcrypt's metadata holds 2,048 bytes with type and date). */
const NAME_MAX = 255;
/** Longest content type kept. */
const TYPE_MAX = 255;
/** Attempts of a share or unshare racing other index changes before giving up. */
const RETRIES = 8;

const blobKey = (id: string): Deno.KvKey => ["blobs", id];
const docKey = (id: string): Deno.KvKey => ["docs", id];
const accessKey = (user: string, id: string): Deno.KvKey => ["access", user, id];

/** What a new upload or a replacement carries. */
export interface Upload {
  /** The request body. */
  body: ReadableStream<Uint8Array> | null;
  /** The declared length, when the client sent one. */
  length: number | undefined;
  /** The file name (`?name=`), if given. */
  name: string | undefined;
  /** The Content-Type, if any. */
  type: string | undefined;
}

/** The documents store of the app. */
export class Documents {
  #kv: Deno.Kv;
  #keys: KeyService;
  #maxBytes: number;

  /**
   * @param kv The app's store.
   * @param keys The key service.
   * @param maxBytes The largest upload accepted.
   */
  constructor(kv: Deno.Kv, keys: KeyService, maxBytes: number) {
    this.#kv = kv;
    this.#keys = keys;
    this.#maxBytes = maxBytes;
  }

  /**
   * The documents `user` owns or may read, by name.
   *
   * @param user The caller.
   * @returns Their documents.
   */
  async list(user: string): Promise<DocumentInfo[]> {
    const ids: Deno.KvKey[] = [];
    for await (const entry of this.#kv.list({ prefix: ["access", user] })) {
      ids.push(docKey(entry.key[2] as string));
    }
    const docs: DocumentInfo[] = [];
    // getMany takes at most 10 keys.
    for (let i = 0; i < ids.length; i += 10) {
      for (const entry of await this.#kv.getMany<DocumentInfo[]>(ids.slice(i, i + 10))) {
        if (entry.value !== null) docs.push(entry.value);
      }
    }
    return docs.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  }

  /**
   * Stores a new document owned by `owner`.
   *
   * @param owner The caller.
   * @param upload The body and its name and type.
   * @returns The new document.
   * @throws {HttpError} 400 without a name, 413 past the limit.
   */
  async create(owner: string, upload: Upload): Promise<DocumentInfo> {
    const name = checkName(upload.name);
    const id = newId();
    const counter = this.#counter(upload);
    const doc: DocumentInfo = {
      id,
      name,
      size: 0,
      type: checkType(upload.type),
      owner,
      sharedWith: [],
      modified: Date.now(),
    };
    const staged = await stage(this.#kv, blobKey(id), counter.stream, {
      encryptionKey: this.#keyOf(owner),
      name,
      type: doc.type,
      lastModified: doc.modified,
      versionstamp: null,
    });
    doc.size = counter.bytes();
    const op = staged.addTo(this.#kv.atomic())
      .check({ key: docKey(id), versionstamp: null })
      .set(docKey(id), doc)
      .set(accessKey(owner, id), true);
    await commitStaged(staged, op, "upload the document");
    return doc;
  }

  /**
   * Replaces a document's content (and maybe its name and type), keeping its readers.
   *
   * @param user The caller (must own it).
   * @param id The document.
   * @param upload The new body.
   * @returns The document.
   * @throws {HttpError} 404, 403, 413, or 409 when it changed meanwhile.
   */
  async replace(user: string, id: string, upload: Upload): Promise<DocumentInfo> {
    const entry = await this.#owned(user, id);
    const old = entry.value;
    const counter = this.#counter(upload);
    const doc: DocumentInfo = {
      ...old,
      name: upload.name === undefined ? old.name : checkName(upload.name),
      type: upload.type === undefined ? old.type : checkType(upload.type),
      modified: Date.now(),
    };
    const staged = await stage(this.#kv, blobKey(id), counter.stream, {
      recipients: this.#recipients(doc),
      name: doc.name,
      type: doc.type,
      lastModified: doc.modified,
    });
    doc.size = counter.bytes();
    const op = staged.addTo(this.#kv.atomic()).check(entry).set(docKey(id), doc);
    await commitStaged(staged, op, "replace the document");
    return doc;
  }

  /**
   * Lets `target` read a document: one stanza more (rewrap), no re-encryption.
   *
   * @param user The caller (must own it).
   * @param id The document.
   * @param target Who to share with.
   * @throws {HttpError} 404 (document or user), 403, 409 past the recipient limit.
   */
  async share(user: string, id: string, target: string): Promise<void> {
    if (!(await userExists(this.#kv, target))) {
      throw new HttpError(404, `Cannot share: there is no user "${target}"`);
    }
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const entry = await this.#owned(user, id);
      const doc = entry.value;
      if (target === doc.owner || doc.sharedWith.includes(target)) return;
      if (doc.sharedWith.length >= READERS_MAX) {
        throw new HttpError(409, `Cannot share: a document has at most ${READERS_MAX} readers`);
      }
      // remove + add: a stanza left by an earlier attempt is replaced, not refused.
      await rewrap(this.#kv, blobKey(id), {
        encryptionKey: this.#keyOf(doc.owner),
        add: this.#keyOf(target),
        remove: [target],
      });
      const next: DocumentInfo = { ...doc, sharedWith: [...doc.sharedWith, target] };
      const result = await this.#kv.atomic().check(entry)
        .set(docKey(id), next)
        .set(accessKey(target, id), true)
        .commit();
      if (result.ok) return;
    }
    throw new HttpError(409, "Cannot share: the document kept changing; try again");
  }

  /**
   * Stops `target` reading a document: it is re-encrypted under a fresh
   * secret for the remaining readers (a rewrap cannot revoke a secret
   * already seen), so its ETag changes.
   *
   * @param user The caller (must own it).
   * @param id The document.
   * @param target Who to remove.
   * @throws {HttpError} 404, 403, 409 when it kept changing.
   */
  async unshare(user: string, id: string, target: string): Promise<void> {
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const entry = await this.#owned(user, id);
      const doc = entry.value;
      if (!doc.sharedWith.includes(target)) return;
      const next: DocumentInfo = {
        ...doc,
        sharedWith: doc.sharedWith.filter((reader) => reader !== target),
      };
      const plaintext = await getAsStream(this.#kv, blobKey(id), {
        encryptionKey: this.#keyOf(doc.owner),
      });
      if (plaintext === null) throw new HttpError(404, "Cannot unshare: the document is gone");
      const staged = await stage(this.#kv, blobKey(id), plaintext, {
        recipients: this.#recipients(next),
        name: doc.name,
        type: doc.type,
        lastModified: doc.modified,
      });
      const op = staged.addTo(this.#kv.atomic()).check(entry)
        .set(docKey(id), next)
        .delete(accessKey(target, id));
      if (await commitStaged(staged, op, "unshare the document", false)) return;
    }
    throw new HttpError(409, "Cannot unshare: the document kept changing; try again");
  }

  /**
   * Deletes a document.
   *
   * @param user The caller (must own it).
   * @param id The document.
   * @throws {HttpError} 404, 403.
   */
  async delete(user: string, id: string): Promise<void> {
    const entry = await this.#owned(user, id);
    const doc = entry.value;
    let op = this.#kv.atomic().check(entry).delete(docKey(id));
    for (const reader of [doc.owner, ...doc.sharedWith]) op = op.delete(accessKey(reader, id));
    const result = await op.commit();
    if (!result.ok) throw new HttpError(409, "Cannot delete: the document changed; try again");
    // The index is gone first: a crash here leaves an unreachable blob, never a dangling entry.
    await remove(this.#kv, blobKey(id));
  }

  /**
   * Answers a download (GET or HEAD, Range, If-Range, If-None-Match).
   *
   * @param user The caller.
   * @param id The document.
   * @param request The request.
   * @returns The file response.
   * @throws {HttpError} 404 when the caller may not read it.
   */
  async respond(user: string, id: string, request: Request): Promise<Response> {
    await this.#readable(user, id);
    return await getAsResponse(this.#kv, blobKey(id), {
      request,
      encryptionKey: this.#keyOf(user),
      headers: { "cache-control": "private, no-cache" },
      notFoundBody: JSON.stringify({ error: "Cannot find the document" }),
      notFoundHeaders: { "content-type": "application/json" },
    });
  }

  /**
   * A document's index entry when `user` may read it.
   *
   * @param user The caller.
   * @param id The document.
   * @returns Its info.
   * @throws {HttpError} 404 otherwise (never saying whether it exists).
   */
  async info(user: string, id: string): Promise<DocumentInfo> {
    return (await this.#readable(user, id)).value;
  }

  async #readable(user: string, id: string): Promise<Deno.KvEntry<DocumentInfo>> {
    const entry = ID_PATTERN.test(id) ? await this.#kv.get<DocumentInfo>(docKey(id)) : null;
    const doc = entry?.value ?? null;
    // Not a reader: the same 404 as a missing document, so ids, names and
    // sizes of others' documents cannot be probed.
    if (entry === null || doc === null || (doc.owner !== user && !doc.sharedWith.includes(user))) {
      throw new HttpError(404, "Cannot find the document");
    }
    return entry as Deno.KvEntry<DocumentInfo>;
  }

  async #owned(user: string, id: string): Promise<Deno.KvEntry<DocumentInfo>> {
    const entry = await this.#readable(user, id);
    if (entry.value.owner !== user) {
      throw new HttpError(403, "Cannot change the document: only its owner can");
    }
    return entry;
  }

  /** The owner's and readers' wrappers: the blob's recipients. */
  #recipients(doc: DocumentInfo): KeyWrapper[] {
    return [doc.owner, ...doc.sharedWith].map((user) => this.#keys.wrapperOf(user));
  }

  /** One user's wrapper as a recipient. */
  #keyOf(user: string): KeyWrapper {
    return this.#keys.wrapperOf(user);
  }

  #counter(upload: Upload): { stream: ReadableStream<Uint8Array>; bytes: () => number } {
    const max = this.#maxBytes;
    // Declared too large: refused before a byte is stored.
    if (upload.length !== undefined && upload.length > max) throw tooLarge(max);
    let bytes = 0;
    const reader = (upload.body ?? new Blob([]).stream()).getReader();
    // Pulled one piece at a time (no queue of its own): a chunked body has
    // no length, so it is counted as it arrives, and the write fails
    // (storing nothing) the moment it passes the limit.
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) return controller.close();
        bytes += value.length;
        if (bytes > max) {
          controller.error(tooLarge(max));
          await reader.cancel();
        } else {
          controller.enqueue(value);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 });
    return { stream, bytes: () => bytes };
  }
}

function tooLarge(max: number): HttpError {
  return new HttpError(413, `Cannot store the document: it is larger than ${max} bytes`);
}

function newId(): string {
  for (;;) {
    const bytes = crypto.getRandomValues(new Uint8Array(ID_BYTES));
    const id = toBase64(bytes).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
    // An id is typed on command lines: one starting with "-" would read as an option.
    if (!id.startsWith("-")) return id;
  }
}

function checkName(name: string | undefined): string {
  if (name === undefined || name.trim() === "") {
    throw new HttpError(400, "Cannot store the document: ?name= is required");
  }
  // deno-lint-ignore no-control-regex -- control characters are what is refused
  if (name.length > NAME_MAX || /[\u0000-\u001f\u007f/\\]/.test(name)) {
    throw new HttpError(
      400,
      `Cannot store the document: a name is at most ${NAME_MAX} characters, without control characters or slashes`,
    );
  }
  return name;
}

function checkType(type: string | undefined): string {
  if (type === undefined) return "";
  if (type.length > TYPE_MAX) {
    throw new HttpError(
      400,
      `Cannot store the document: a content type is at most ${TYPE_MAX} characters`,
    );
  }
  return type;
}

/**
 * Commits a staged blob with the index change (`commit` completes it).
 *
 * @returns Whether it committed (false only when `conflictIsError` is false).
 * @throws {HttpError} 409 when the index changed meanwhile.
 */
async function commitStaged(
  staged: StagedBlob,
  op: Deno.AtomicOperation,
  action: string,
  conflictIsError = true,
): Promise<boolean> {
  const result = await staged.commit(op);
  if (result.ok) return true;
  if (!conflictIsError) return false;
  throw new HttpError(409, `Cannot ${action}: it changed while uploading; try again`);
}
