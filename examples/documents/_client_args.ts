/**
 * The command line of the documents CLI client, parsed strictly: every
 * mistake is a {@linkcode UsageError} naming it, never a guess.
 *
 * @module
 */

/** The server the client talks to unless `--url` says otherwise. */
export const DEFAULT_URL = "http://127.0.0.1:8000";

/** The help text. */
export const USAGE = `Usage: deno task client [--url URL] COMMAND [ARGS]

Commands:
  upload FILE [--name NAME]    upload a file (NAME defaults to the file's name)
  download ID [-o FILE]        download a document (FILE defaults to its name; - for stdout)
  list                         list your documents and those shared with you
  share ID USER                let USER read the document
  unshare ID USER              stop USER reading it (the document is re-encrypted)
  delete ID                    delete the document

Options:
  --url URL     the documents app (default ${DEFAULT_URL})
  -h, --help    show this help

The API token is read from the DOCUMENTS_TOKEN environment variable.
Exit status: 0 on success, 1 when the command failed, 2 for a usage error.`;

/** A parsed command line. */
export type Command =
  | { command: "help" }
  | { command: "upload"; url: string; file: string; name: string | undefined }
  | { command: "download"; url: string; id: string; output: string | undefined }
  | { command: "list"; url: string }
  | { command: "share" | "unshare"; url: string; id: string; user: string }
  | { command: "delete"; url: string; id: string };

/** A command line that does not parse: exit status 2. */
export class UsageError extends Error {
  /** @param message What is wrong, starting with "Cannot". */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Positional arguments each command takes. */
const ARITY: Record<string, string[]> = {
  upload: ["FILE"],
  download: ["ID"],
  list: [],
  share: ["ID", "USER"],
  unshare: ["ID", "USER"],
  delete: ["ID"],
};

/** Options with a value, and the commands that accept them (undefined: all). */
const VALUED: Record<string, { key: "url" | "name" | "output"; only?: string }> = {
  "--url": { key: "url" },
  "--name": { key: "name", only: "upload" },
  "-o": { key: "output", only: "download" },
  "--output": { key: "output", only: "download" },
};

/**
 * Parses the client's arguments.
 *
 * @param args The arguments after the script name.
 * @returns The command.
 * @throws {UsageError} for an unknown command or option, a missing or extra
 * argument, an option given twice, an empty value, or a URL that is not http(s).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseArgs } from "./_client_args.ts";
 *
 * assert.deepEqual(parseArgs(["download", "abc", "-o", "out.pdf"]), {
 *   command: "download",
 *   url: "http://127.0.0.1:8000",
 *   id: "abc",
 *   output: "out.pdf",
 * });
 * assert.throws(() => parseArgs(["upload"]), /Cannot upload: FILE is missing/);
 * ```
 */
export function parseArgs(args: readonly string[]): Command {
  const positional: string[] = [];
  const values: Partial<Record<"url" | "name" | "output", string>> = {};
  const used: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    const option = VALUED[flag];
    if (option === undefined) {
      throw new UsageError(`Cannot parse the arguments: unknown option ${flag}`);
    }
    const value = eq < 0 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined) {
      throw new UsageError(`Cannot parse the arguments: ${flag} needs a value`);
    }
    if (value === "") throw new UsageError(`Cannot parse the arguments: ${flag} must not be empty`);
    if (values[option.key] !== undefined) {
      throw new UsageError(`Cannot parse the arguments: ${flag} is given twice`);
    }
    values[option.key] = value;
    used.push(flag);
  }
  if (help) return { command: "help" };
  const [command, ...rest] = positional;
  if (command === undefined) throw new UsageError("Cannot run: no command given (try --help)");
  const names = ARITY[command];
  if (names === undefined) {
    throw new UsageError(`Cannot run "${command}": unknown command (try --help)`);
  }
  for (const flag of used) {
    const only = VALUED[flag]!.only;
    if (only !== undefined && only !== command) {
      throw new UsageError(`Cannot ${command}: ${flag} is only for ${only}`);
    }
  }
  if (rest.length < names.length) {
    throw new UsageError(`Cannot ${command}: ${names[rest.length]} is missing`);
  }
  if (rest.length > names.length) {
    throw new UsageError(`Cannot ${command}: unexpected argument "${rest[names.length]}"`);
  }
  if (rest.some((value) => value === "")) {
    throw new UsageError(`Cannot ${command}: an argument is empty`);
  }
  const url = checkUrl(values.url ?? DEFAULT_URL);
  const [first, second] = rest as [string, string];
  switch (command) {
    case "upload":
      return { command, url, file: first, name: values.name };
    case "download":
      return { command, url, id: first, output: values.output };
    case "list":
      return { command, url };
    case "share":
    case "unshare":
      return { command, url, id: first, user: second };
    default:
      return { command: "delete", url, id: first };
  }
}

function checkUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`Cannot use --url ${text}: it is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`Cannot use --url ${text}: only http and https are supported`);
  }
  return text;
}
