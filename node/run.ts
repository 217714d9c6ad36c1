/**
 * `deno task node:check`: kvcrypt on Node 20 with `@deno/kv`, both ways.
 *
 * 1. installs `@deno/kv` from npm into `.tools/node/` (git-ignored) when it is missing,
 * 2. bundles mod.ts with `deno bundle`,
 * 3. writes blobs and a cryptoKv value to a SQLite file with Deno's own KV,
 * 4. runs node/check.mjs on Node, which reads them, round-trips its own and writes them,
 * 5. reads what Node wrote, here in Deno,
 * 6. runs the README's Node example on Node.
 *
 * The last line is `N passed, N failed` (Node's checks and Deno's together);
 * the exit code is 1 when anything failed. node_interop_test.ts runs the same
 * steps as a test.
 *
 * @module
 */

import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { generateKey } from "../keys.ts";
import { get, getAsBlob, getMeta, set } from "../blob.ts";
import { cryptoKv } from "../crypto.ts";
import {
  DENO_KEYS,
  describeRandomValue,
  KEY_VARIABLE,
  NODE_KEYS,
  randomBytes,
  sha256Hex,
  valueOf,
} from "./_interop.mjs";

/** The `@deno/kv` release checked (the one the README names). */
export const DENO_KV_VERSION = "0.14.0";

/** The repository root. */
const ROOT = new URL("..", import.meta.url);
/** Where `@deno/kv` is installed (git-ignored). */
const PREFIX = new URL(".tools/node/", ROOT);
/** Size of the encrypted blob Deno writes: 2 MiB and a partial chunk. */
const DENO_BLOB = 2 * 1024 * 1024 + 777;

/** The file path of a file: URL (spaces and other escapes decoded). */
function pathOf(url: URL): string {
  return decodeURIComponent(url.pathname);
}

/** Files the Node check needs. */
export interface NodeCheckFiles {
  /** The Node version that runs it, e.g. `v20.20.2`. */
  node: string;
  /** mod.ts bundled into one ES module. */
  bundle: string;
  /** `@deno/kv`'s ES module entry. */
  kvEntry: string;
}

/** Runs a command, returning its exit code and combined output. */
async function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(command, {
    args,
    env,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  });
  const result = await child.output().catch((cause) => {
    throw new Error(`Cannot run the Node check: ${command} did not start`, { cause });
  });
  const text = new TextDecoder();
  return {
    code: result.code,
    output: text.decode(result.stdout) + text.decode(result.stderr),
  };
}

/** Throws with the command's output when it failed. */
function expectSuccess(what: string, result: { code: number; output: string }): void {
  if (result.code !== 0) throw new Error(`Cannot ${what} (exit ${result.code}):\n${result.output}`);
}

/** Installs `@deno/kv` unless the pinned version is already there; returns its ESM entry. */
async function installDenoKv(): Promise<string> {
  const dir = new URL(`node_modules/@deno/kv/`, PREFIX);
  const version = await Deno.readTextFile(new URL("package.json", dir))
    .then((text) => JSON.parse(text).version, () => undefined);
  if (version !== DENO_KV_VERSION) {
    await Deno.mkdir(PREFIX, { recursive: true });
    const args = ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", pathOf(PREFIX)];
    expectSuccess(
      `install @deno/kv@${DENO_KV_VERSION} from npm`,
      await run("npm", [...args, `@deno/kv@${DENO_KV_VERSION}`]),
    );
  }
  return pathOf(new URL("esm/npm.js", dir));
}

/** Node's version; throws when `node` is missing or is Deno standing in for it. */
async function nodeVersion(): Promise<string> {
  const probe = "process.stdout.write(process.versions.deno ? 'deno' : process.version)";
  const { code, output } = await run("node", ["-e", probe]);
  // Deno runs itself when `node` is not on PATH: that would test Deno, not Node.
  if (code !== 0 || !/^v\d+\./.test(output)) {
    throw new Error(
      `Cannot run the Node check: node is not on PATH (got ${JSON.stringify(output)})`,
    );
  }
  // Node 20.6 is the oldest release kvcrypt supports (ReadableStream.from).
  const [major = 0, minor = 0] = output.slice(1).split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 6)) {
    throw new Error(`Cannot run the Node check: it needs Node 20.6 or later, not ${output}`);
  }
  return output;
}

/**
 * Checks for Node 20.6 or later, installs `@deno/kv` if needed and bundles
 * mod.ts into `dir`.
 *
 * @param dir A scratch directory.
 * @returns The bundle's and `@deno/kv`'s paths.
 */
export async function prepareNodeCheck(dir: string): Promise<NodeCheckFiles> {
  const node = await nodeVersion();
  const kvEntry = await installDenoKv();
  const bundle = `${dir}/kvcrypt.mjs`;
  expectSuccess(
    "bundle mod.ts",
    await run(Deno.execPath(), ["bundle", "--quiet", "--output", bundle, "mod.ts"]),
  );
  return { node, bundle, kvEntry };
}

/**
 * Writes, with Deno's own KV, what the Node side reads: `deno.sqlite` and its
 * manifest `deno.json`.
 *
 * @param dir A scratch directory.
 * @returns The shared key, as a JWK.
 */
export async function writeDenoSide(dir: string): Promise<JsonWebKey & { kid: string }> {
  const encryptionKey = await generateKey({ kid: "node-check" });
  const blob = randomBytes(DENO_BLOB);
  const plain = randomBytes(100_000);
  const fileBytes = randomBytes(70_000);
  const file = new File([fileBytes], "fotó.png", { type: "image/png", lastModified: 1_234_567 });
  const value = describeRandomValue();
  const kv = await Deno.openKv(`${dir}/deno.sqlite`);
  try {
    await set(kv, DENO_KEYS.blob, blob, { encryptionKey });
    await set(kv, DENO_KEYS.plain, plain);
    await set(kv, DENO_KEYS.file, file, { encryptionKey });
    await cryptoKv(kv, encryptionKey).set(DENO_KEYS.value, valueOf(value));
    const id = (await getMeta(kv, DENO_KEYS.blob, { encryptionKey })).value?.id;
    const manifest = {
      kid: encryptionKey.kid,
      blob: { size: blob.length, sha256: await sha256Hex(blob), id },
      plain: { sha256: await sha256Hex(plain) },
      file: {
        name: file.name,
        type: file.type,
        lastModified: file.lastModified,
        sha256: await sha256Hex(fileBytes),
      },
      value,
    };
    await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify(manifest));
  } finally {
    kv.close();
  }
  return encryptionKey;
}

/** The outcome of node/check.mjs. */
export interface NodeCheckResult {
  /** Node's exit code. */
  code: number;
  /** Everything it printed. */
  output: string;
  /** Checks that passed, from its last line. */
  passed: number;
  /** Checks that failed, from its last line. */
  failed: number;
}

/**
 * Runs node/check.mjs on what {@linkcode writeDenoSide} wrote.
 *
 * @param dir The scratch directory.
 * @param files What {@linkcode prepareNodeCheck} made.
 * @param key The shared key.
 * @returns Node's exit code, output and counts.
 */
export async function runNodeSide(
  dir: string,
  files: NodeCheckFiles,
  key: JsonWebKey,
): Promise<NodeCheckResult> {
  const script = pathOf(new URL("node/check.mjs", ROOT));
  const { code, output } = await run(
    "node",
    [script, files.bundle, files.kvEntry, dir],
    { [KEY_VARIABLE]: JSON.stringify(key) },
  );
  const counts = output.match(/^(\d+) passed, (\d+) failed$/m);
  return { code, output, passed: Number(counts?.[1] ?? 0), failed: Number(counts?.[2] ?? 1) };
}

/**
 * Runs the README's Node example (its one `js ignore` block) on Node, its
 * package imports pointed at the bundle and `@deno/kv`, in `dir`.
 *
 * @param dir The scratch directory (the example's SQLite file lands there).
 * @param files What {@linkcode prepareNodeCheck} made.
 * @param key The key the example reads from `KVCRYPT_KEY`.
 * @returns Node's exit code and output.
 */
export async function runReadmeExample(
  dir: string,
  files: NodeCheckFiles,
  key: JsonWebKey,
): Promise<{ code: number; output: string }> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const blocks = [...readme.matchAll(/^```js ignore\n([\s\S]*?)^```$/gm)];
  if (blocks.length !== 1) {
    throw new Error(`Cannot find the README's Node example (${blocks.length} found)`);
  }
  const source = blocks[0]![1]!
    .replace('from "@kvcrypt/kvcrypt"', `from ${JSON.stringify(pathToFileURL(files.bundle).href)}`)
    .replace('from "@deno/kv"', `from ${JSON.stringify(pathToFileURL(files.kvEntry).href)}`)
    .replace('openKv("app.sqlite")', `openKv(${JSON.stringify(`${dir}/readme.sqlite`)})`);
  const script = `${dir}/readme_example.mjs`;
  await Deno.writeTextFile(script, source);
  return await run("node", [script], { KVCRYPT_KEY: JSON.stringify(key) });
}

/** One named check Deno runs on what Node wrote. */
export interface DenoSideCheck {
  /** What it proves. */
  name: string;
  /** Throws an AssertionError when it fails. */
  run(kv: Deno.Kv, key: JsonWebKey): Promise<void>;
}

/** What Deno checks in `node.sqlite`, against `node.json`. */
export function denoSideChecks(dir: string): DenoSideCheck[] {
  const manifest = () => Deno.readTextFile(`${dir}/node.json`).then(JSON.parse);
  return [{
    name: "Deno reads the encrypted 5 MiB blob Node wrote",
    async run(kv, encryptionKey) {
      const expected = (await manifest()).blob;
      const { value } = await get(kv, NODE_KEYS.blob, { encryptionKey });
      assert.ok(value instanceof Uint8Array, "bytes come back");
      assert.equal(value.length, expected.size);
      assert.equal(await sha256Hex(value), expected.sha256);
    },
  }, {
    name: "Deno reads the encrypted File Node wrote",
    async run(kv, encryptionKey) {
      const expected = (await manifest()).file;
      const file = await getAsBlob(kv, NODE_KEYS.file, { encryptionKey });
      assert.ok(file instanceof File, "a File comes back");
      assert.deepEqual(
        { name: file.name, type: file.type, lastModified: file.lastModified },
        { name: expected.name, type: expected.type, lastModified: expected.lastModified },
      );
      assert.equal(await sha256Hex(await file.bytes()), expected.sha256);
    },
  }, {
    name: "Deno reads the cryptoKv value Node wrote",
    async run(kv, encryptionKey) {
      const description = (await manifest()).value;
      const entry = await cryptoKv(kv, encryptionKey).get(NODE_KEYS.value);
      assert.deepEqual(entry.value, valueOf(description));
    },
  }];
}

/** Every step, printing each check; resolves to the counts. */
async function main(): Promise<{ passed: number; failed: number }> {
  const dir = await Deno.makeTempDir({ prefix: "kvcrypt-node-check-" });
  try {
    const files = await prepareNodeCheck(dir);
    console.log(`Node ${files.node}, @deno/kv ${DENO_KV_VERSION}`);
    const key = await writeDenoSide(dir);
    const node = await runNodeSide(dir, files, key);
    console.log(node.output.trimEnd().replace(/\n?^\d+ passed, \d+ failed$/m, ""));
    let { passed, failed } = node;
    if (node.code !== 0 && failed === 0) failed = 1;
    const example = await runReadmeExample(dir, files, key);
    if (example.code === 0) passed++;
    else failed++;
    console.log(
      example.code === 0
        ? "ok - the README's Node example runs"
        : `not ok - the README's Node example runs: exit ${example.code}\n${example.output}`,
    );
    const kv = await Deno.openKv(`${dir}/node.sqlite`);
    try {
      for (const check of denoSideChecks(dir)) {
        try {
          await check.run(kv, key);
          passed++;
          console.log(`ok - ${check.name}`);
        } catch (error) {
          failed++;
          console.log(`not ok - ${check.name}: ${error instanceof Error ? error.stack : error}`);
        }
      }
    } finally {
      kv.close();
    }
    return { passed, failed };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { passed, failed } = await main().catch((error) => {
    console.log(
      `not ok - the Node check could not run: ${error instanceof Error ? error.message : error}`,
    );
    return { passed: 0, failed: 1 };
  });
  console.log(`${passed} passed, ${failed} failed`);
  Deno.exit(failed === 0 ? 0 : 1);
}
