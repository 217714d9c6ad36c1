/**
 * The few things kvcrypt asks of its runtime beyond Web Crypto and a KV
 * store. Each works on Deno and Deno Deploy through the `Deno` global, and
 * falls back where `Deno` is absent (Node with `@deno/kv`).
 *
 * @module
 */

/** The `Deno` global, or `undefined` on runtimes without it (Node). */
function denoGlobal(): typeof Deno | undefined {
  return (globalThis as { Deno?: typeof Deno }).Deno;
}

/** Node's `process.env`, read from the global so that no `node:process` import reaches Deno Deploy. */
function processEnv(): Readonly<Record<string, string | undefined>> | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
}

/**
 * An environment variable: `Deno.env` on Deno (which may ask for `--allow-env`),
 * `process.env` where `Deno` is absent, `undefined` when neither has it.
 *
 * @throws {Deno.errors.NotCapable} On Deno, without permission to read `name`.
 */
export function readEnv(name: string): string | undefined {
  const deno = denoGlobal();
  return deno === undefined ? processEnv()?.[name] : deno.env.get(name);
}

/**
 * Whether a value is a `Deno.KvU64`; always false where `Deno` or its
 * `KvU64` is absent (Node, or Deno without `--unstable-kv` using `@deno/kv`).
 */
export function isKvU64(value: unknown): boolean {
  const KvU64 = denoGlobal()?.KvU64 as typeof Deno.KvU64 | undefined;
  return typeof KvU64 === "function" && value instanceof KvU64;
}

/** Whether this runtime has the `Deno` global (the keys CLI needs it). */
export function hasDeno(): boolean {
  return denoGlobal() !== undefined;
}
