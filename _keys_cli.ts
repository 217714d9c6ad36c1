/**
 * The command line of `keys.ts`: prints a new key as a JWK, or with `--add` a
 * JWK Set with the new key first and the file's keys after it. Private: run it
 * through `deno run keys.ts`.
 *
 * @module
 */

import { generateKey, importKey } from "./keys.ts";

/** Exit code for success. */
const EXIT_OK = 0;
/** Exit code when the key file cannot be read or imported. */
const EXIT_FAILURE = 1;
/** Exit code for bad command-line usage, as most Unix tools use. */
const EXIT_USAGE = 2;

/** The help text. */
const USAGE = `Usage: deno run keys.ts [--bits 128|256] [--kid ID] [--add JWKS_FILE]

Prints a new AES-GCM key as a JWK (one line of JSON), for example to store in
the KVCRYPT_KEY environment variable.

Options:
  --bits 128|256     key size in bits (default 256)
  --kid ID           key id (default: 16 random hex characters)
  --add JWKS_FILE    print a JWK Set: the new key first, then the keys of the
                     JWK or JWK Set in JWKS_FILE (rotation: new writes use the
                     new key, the old keys still read)
  -h, --help         print this help`;

/** The line printed after a usage error. */
const USAGE_HINT = "Run with --help for usage.";

/** Flags that take a value. */
const VALUE_FLAGS = ["--bits", "--kid", "--add"] as const;

/** Parsed command line. */
interface Options {
  help: boolean;
  bits: 128 | 256;
  kid?: string;
  add?: string;
}

/** A command line that cannot be parsed; the message is for the user. */
class UsageError extends Error {}

/**
 * Runs the CLI.
 *
 * @param args The arguments after the script name.
 * @returns The process exit code.
 */
export async function main(args: string[]): Promise<number> {
  let options: Options;
  try {
    options = parseArgs(args);
  } catch (error) {
    return usageError(error);
  }
  if (options.help) {
    console.log(USAGE);
    return EXIT_OK;
  }
  let jwk: JsonWebKey & { kid: string };
  try {
    jwk = await generateKey(options);
  } catch (error) {
    // Only the options can make generateKey fail: a bad --kid is a usage error.
    return usageError(error);
  }
  try {
    const output = options.add === undefined
      ? jwk
      : { keys: [jwk, ...await readKeys(options.add, jwk.kid)] };
    console.log(JSON.stringify(output));
    return EXIT_OK;
  } catch (error) {
    console.error((error as Error).message);
    return EXIT_FAILURE;
  }
}

/** Prints a usage error with the hint and returns the usage exit code. */
function usageError(error: unknown): number {
  if (!(error instanceof UsageError || error instanceof RangeError || error instanceof TypeError)) {
    throw error;
  }
  console.error(`${error.message}\n${USAGE_HINT}`);
  return EXIT_USAGE;
}

/** Parses the arguments by hand: `--flag value`, `--flag=value`, `-h`, `--help`. */
function parseArgs(args: readonly string[]): Options {
  const options: Options = { help: false, bits: 256 };
  const seen = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "-h" || arg === "--help") {
      options.help = true;
      continue;
    }
    const [flag, inline] = splitFlag(arg, i);
    if (seen.has(flag)) throw new UsageError(`Cannot use ${flag} twice`);
    seen.add(flag);
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`Cannot use ${flag}: it needs a value`);
    setOption(options, flag, value);
  }
  return options;
}

/** Splits `--flag=value` into flag and value; refuses unknown flags and positional arguments. */
function splitFlag(arg: string, index: number): [typeof VALUE_FLAGS[number], string | undefined] {
  const equals = arg.indexOf("=");
  const name = equals === -1 ? arg : arg.slice(0, equals);
  const flag = VALUE_FLAGS.find((known) => known === name);
  if (flag !== undefined) return [flag, equals === -1 ? undefined : arg.slice(equals + 1)];
  // Name only the flag, never its value or a positional argument: either may be a pasted key.
  if (name.startsWith("-")) throw new UsageError(`Cannot use unknown option ${name}`);
  throw new UsageError(`Cannot use argument ${index + 1}: this command takes options only`);
}

/** Stores one flag's value. */
function setOption(options: Options, flag: typeof VALUE_FLAGS[number], value: string): void {
  if (flag === "--kid") options.kid = value;
  else if (flag === "--add") options.add = value;
  else if (value === "128" || value === "256") options.bits = Number(value) as 128 | 256;
  else throw new UsageError("Cannot use --bits: expected 128 or 256");
}

/**
 * Reads a JWK or JWK Set file and returns its keys, after checking them with
 * importKey and that none has the new key's kid. Errors never quote the file.
 */
async function readKeys(path: string, newKid: string): Promise<JsonWebKey[]> {
  const name = JSON.stringify(path);
  let text: string;
  try {
    // Editors on some systems start a UTF-8 file with a byte-order mark, which is not JSON.
    text = (await Deno.readTextFile(path)).replace(/^\uFEFF/, "");
  } catch (error) {
    throw new Error(`Cannot read ${name}: ${(error as Error).message}`);
  }
  let kids: string[];
  try {
    kids = (await importKey(text)).kids;
  } catch (error) {
    const detail = (error as Error).message.replace(/^Cannot import key: /, "");
    throw new Error(`Cannot import key from ${name}: ${detail}`);
  }
  // A second key under the new kid would make readers try the wrong key.
  if (newKid !== "" && kids.includes(newKid)) {
    throw new Error(`Cannot add key: kid ${JSON.stringify(newKid)} is already in ${name}`);
  }
  const parsed = JSON.parse(text) as JsonWebKey | { keys: JsonWebKey[] };
  return "keys" in parsed ? parsed.keys : [parsed];
}
