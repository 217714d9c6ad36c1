/**
 * The documents CLI client.
 *
 * ```sh
 * export DOCUMENTS_TOKEN=…               # from `deno task users add NAME`
 * deno task client upload report.pdf
 * deno task client list
 * deno task client download ID -o copy.pdf
 * deno task client share ID bob
 * ```
 *
 * Uploads and downloads stream (any size, memory bounded) with a progress
 * bar when stderr is a terminal. Every failure prints one line saying what
 * failed and why, and exits 1 (2 for a usage error). A failed download
 * leaves no partial file under the target name.
 *
 * @module
 */

import { type Command, parseArgs, USAGE, UsageError } from "./_client_args.ts";
import { streamUpload } from "./_upload.ts";

/** A failed command: one line for the user. */
class CommandError extends Error {}

/** Content types guessed from a file's extension (the server keeps what it is sent). */
const TYPES: Record<string, string> = {
  pdf: "application/pdf",
  txt: "text/plain",
  md: "text/markdown",
  csv: "text/csv",
  json: "application/json",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  zip: "application/zip",
  html: "text/html",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
};

/** Redraws of the progress bar per second at most. */
const PROGRESS_HZ = 10;

interface DocumentInfo {
  id: string;
  name: string;
  size: number;
  type: string;
  owner: string;
  sharedWith: string[];
}

/**
 * Runs the client.
 *
 * @param args The command line.
 * @returns The exit status.
 */
export async function run(args: readonly string[]): Promise<number> {
  let command: Command;
  try {
    command = parseArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`client: ${error.message}`);
    return 2;
  }
  if (command.command === "help") {
    console.log(USAGE);
    return 0;
  }
  const token = Deno.env.get("DOCUMENTS_TOKEN") ?? "";
  if (token === "") {
    console.error(`client: Cannot ${command.command}: set DOCUMENTS_TOKEN to your API token`);
    return 2;
  }
  try {
    await execute(command, token);
    return 0;
  } catch (error) {
    console.error(`client: ${error instanceof CommandError ? error.message : describe(error)}`);
    return 1;
  }
}

async function execute(command: Exclude<Command, { command: "help" }>, token: string) {
  const api = new Api(command.url, token);
  switch (command.command) {
    case "upload":
      return await upload(api, command.file, command.name);
    case "download":
      return await download(api, command.id, command.output);
    case "list":
      return list(await api.json<DocumentInfo[]>("GET", "documents", `list documents`));
    case "share":
      await api.json("POST", `documents/${enc(command.id)}/shares`, `share ${command.id}`, {
        user: command.user,
      });
      return console.log(`Shared ${command.id} with ${command.user}.`);
    case "unshare":
      await api.json(
        "DELETE",
        `documents/${enc(command.id)}/shares/${enc(command.user)}`,
        `unshare ${command.id}`,
      );
      return console.log(`${command.user} can no longer read ${command.id}.`);
    case "delete":
      await api.json("DELETE", `documents/${enc(command.id)}`, `delete ${command.id}`);
      return console.log(`Deleted ${command.id}.`);
  }
}

const enc = encodeURIComponent;

/** Requests to the app, with failures turned into one line. */
class Api {
  readonly base: string;
  #token: string;

  constructor(url: string, token: string) {
    this.base = url.endsWith("/") ? url : `${url}/`;
    this.#token = token;
  }

  url(path: string): URL {
    return new URL(`api/${path}`, this.base);
  }

  get headers(): Record<string, string> {
    return { authorization: `Bearer ${this.#token}` };
  }

  async fetch(method: string, path: string, action: string, body?: unknown): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(this.url(path), {
        method,
        headers: body === undefined
          ? this.headers
          : { ...this.headers, "content-type": "application/json" },
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (error) {
      throw this.unreachable(action, error);
    }
    if (!response.ok) throw await this.refused(action, response.status, await response.text());
    return response;
  }

  async json<T>(method: string, path: string, action: string, body?: unknown): Promise<T> {
    const response = await this.fetch(method, path, action, body);
    return (response.status === 204 ? null : await response.json()) as T;
  }

  unreachable(action: string, error: unknown): CommandError {
    return new CommandError(
      `Cannot ${action}: the server at ${this.base} is unreachable (${networkReason(error)})`,
    );
  }

  refused(action: string, status: number, text: string): CommandError {
    let reason = "";
    try {
      const error = JSON.parse(text).error;
      if (typeof error === "string") reason = error;
    } catch {
      reason = text.trim().slice(0, 200);
    }
    const hint = status === 401 ? " (check DOCUMENTS_TOKEN)" : "";
    return new CommandError(
      `Cannot ${action}: HTTP ${status}: ${reason || "no reason given"}${hint}`,
    );
  }
}

function networkReason(error: unknown): string {
  const text = describe(error);
  if (/refused/i.test(text)) return "connection refused";
  if (/dns|lookup|not known|ENOTFOUND/i.test(text)) return "unknown host";
  if (/reset|closed|EPIPE/i.test(text)) return "the connection was cut";
  if (/timed? ?out/i.test(text)) return "timed out";
  return text;
}

function describe(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e !== undefined && depth < 4; depth++) {
    if (e instanceof Error) {
      parts.push(e.message);
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join(": ");
}

async function upload(api: Api, file: string, name: string | undefined): Promise<void> {
  const action = `upload ${file}`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(file);
  } catch (error) {
    throw new CommandError(`Cannot ${action}: ${fileReason(error)}`);
  }
  if (!info.isFile) throw new CommandError(`Cannot ${action}: it is not a regular file`);
  const fileName = name ?? file.split("/").pop()!;
  const type = TYPES[fileName.split(".").pop()!.toLowerCase()] ?? "application/octet-stream";
  const source = await Deno.open(file);
  const progress = new Progress(`upload ${fileName}`, info.size);
  let answer;
  try {
    answer = await streamUpload({
      url: new URL(`${api.url("documents")}?name=${enc(fileName)}`),
      method: "POST",
      headers: { ...api.headers, "content-type": type },
      body: source.readable,
      length: info.size,
      onProgress: (sent) => progress.update(sent),
    });
  } catch (error) {
    throw api.unreachable(action, error);
  } finally {
    progress.done();
  }
  if (answer.status !== 201) throw api.refused(action, answer.status, answer.text);
  const doc = JSON.parse(answer.text) as DocumentInfo;
  console.log(`Uploaded ${doc.name} (${doc.size} bytes) as ${doc.id}`);
  console.log(doc.id);
}

async function download(api: Api, id: string, output: string | undefined): Promise<void> {
  const action = `download ${id}`;
  const response = await api.fetch("GET", `documents/${enc(id)}`, action);
  const size = Number(response.headers.get("content-length") ?? NaN);
  const target = output ?? safeName(response.headers.get("content-disposition"), id);
  const progress = new Progress(`download ${target}`, size);
  const counted = response.body!.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(piece, controller) {
        progress.add(piece.length);
        controller.enqueue(piece);
      },
    }),
  );
  try {
    if (target === "-") await counted.pipeTo(Deno.stdout.writable, { preventClose: true });
    else await writeFile(target, counted, action);
  } catch (error) {
    if (error instanceof CommandError) throw error;
    throw new CommandError(`Cannot ${action}: ${transferReason(error, target)}`);
  } finally {
    progress.done();
  }
  if (target !== "-") console.log(`Saved ${target}`);
}

/**
 * Writes to a temporary file next to `target`, renamed over it only once
 * complete: a failed download leaves no partial file under the target name.
 * A target that exists and is not a regular file (a device, a FIFO) is
 * written directly.
 */
async function writeFile(target: string, body: ReadableStream<Uint8Array>, action: string) {
  const existing = await Deno.stat(target).catch(() => undefined);
  if (existing !== undefined && !existing.isFile) {
    const file = await Deno.open(target, { write: true });
    await body.pipeTo(file.writable);
    return;
  }
  const slash = target.lastIndexOf("/");
  const dir = slash < 0 ? "." : target.slice(0, slash) || "/";
  let temp: string;
  try {
    temp = await Deno.makeTempFile({ dir, prefix: ".download-", suffix: ".part" });
  } catch (error) {
    throw new CommandError(`Cannot ${action}: cannot write in ${dir} (${fileReason(error)})`);
  }
  try {
    const file = await Deno.open(temp, { write: true, truncate: true });
    await body.pipeTo(file.writable);
    await Deno.rename(temp, target);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

function transferReason(error: unknown, target: string): string {
  const code = (error as { code?: string }).code;
  const text = describe(error);
  if (code === "ENOSPC" || /no space left/i.test(text)) {
    return `the disk is full (writing ${target})`;
  }
  if (error instanceof Deno.errors.PermissionDenied) return `permission denied (writing ${target})`;
  if (/body|connection|reset|closed|EOF/i.test(text)) return "the connection was cut mid-transfer";
  return text;
}

function fileReason(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  return describe(error);
}

/** The file name from Content-Disposition (`filename*` first), reduced to a safe base name. */
function safeName(disposition: string | null, fallback: string): string {
  let name = "";
  const extended = /filename\*=UTF-8''([^;]+)/i.exec(disposition ?? "");
  const plain = /filename="((?:[^"\\]|\\.)*)"/i.exec(disposition ?? "");
  try {
    if (extended !== null) name = decodeURIComponent(extended[1]!);
  } catch {
    name = "";
  }
  if (name === "" && plain !== null) name = plain[1]!.replace(/\\(.)/g, "$1");
  // A server-chosen name must not write outside the current folder (path traversal).
  // deno-lint-ignore no-control-regex -- control characters are what is removed
  name = name.split(/[/\\]/).pop()!.replace(/[\u0000-\u001f\u007f]/g, "");
  return name === "" || name === "." || name === ".." ? fallback : name;
}

function list(docs: DocumentInfo[]): void {
  if (docs.length === 0) return console.log("No documents.");
  for (const doc of docs) {
    const shared = doc.sharedWith.length === 0 ? "" : `\tshared with ${doc.sharedWith.join(", ")}`;
    console.log(`${doc.id}\t${String(doc.size).padStart(12)}\t${doc.owner}\t${doc.name}${shared}`);
  }
}

/** A progress bar on stderr, drawn only when stderr is a terminal. */
class Progress {
  #label: string;
  #total: number;
  #bytes = 0;
  #started = performance.now();
  #drawn = 0;
  #active = Deno.stderr.isTerminal();

  constructor(label: string, total: number) {
    this.#label = label;
    this.#total = total;
  }

  add(bytes: number): void {
    this.update(this.#bytes + bytes);
  }

  update(bytes: number): void {
    this.#bytes = bytes;
    const now = performance.now();
    if (!this.#active || now - this.#drawn < 1000 / PROGRESS_HZ) return;
    this.#drawn = now;
    const mib = bytes / 2 ** 20;
    const rate = mib / Math.max((now - this.#started) / 1000, 0.001);
    const known = Number.isFinite(this.#total) && this.#total > 0;
    const fraction = known ? Math.min(bytes / this.#total, 1) : 0;
    const bar = known
      ? `[${"#".repeat(Math.round(fraction * 30)).padEnd(30, "-")}] ${
        (fraction * 100).toFixed(0)
      }% `
      : "";
    const text = `\r${this.#label} ${bar}${mib.toFixed(1)} MiB ${rate.toFixed(1)} MiB/s`;
    Deno.stderr.writeSync(new TextEncoder().encode(text));
  }

  done(): void {
    if (this.#active && this.#drawn > 0) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  }
}

if (import.meta.main) Deno.exit(await run(Deno.args));
