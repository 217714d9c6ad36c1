/**
 * Loads kitsonk/kv-toolbox's sources without JSR: finds (or extracts) a
 * snapshot of the repository and writes an import map that points the `@std/*`
 * and `jsr:@std/*` specifiers its code and tests import at the small stand-ins
 * in `./_kv_toolbox_std/`. The snapshot is supplied by the caller (for example
 * from `KV_TOOLBOX_DIR`) and is never part of this repository.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run bench/_kv_toolbox.ts "$KV_TOOLBOX_DIR"
 * # prints the source directory and the import map, then for example:
 * deno test --no-config --unstable-kv --allow-read --allow-write --import-map=MAP SRC/blob.test.ts
 * ```
 *
 * @module
 */

const STD = new URL("./_kv_toolbox_std/", import.meta.url);

/** Each specifier kv-toolbox 0.30 imports from std, and the stand-in file that replaces it. */
const SHIMS: Record<string, string> = {
  "@std/assert": "assert.ts",
  "@std/assert/assert": "assert.ts",
  "@std/bytes/concat": "bytes.ts",
  "@std/crypto/timing-safe-equal": "crypto.ts",
  "@std/encoding/base64url": "encoding.ts",
  "@std/encoding/hex": "encoding.ts",
  "@std/media-types/extension": "media_types.ts",
  "jsr:@std/assert@~1/assert": "assert.ts",
  "jsr:@std/assert@~1/equals": "assert.ts",
  "jsr:@std/assert@~1/not-equals": "assert.ts",
  "jsr:@std/assert@~1/rejects": "assert.ts",
  "jsr:@std/assert@~1/strict-equals": "assert.ts",
  "jsr:@std/assert@~1/throws": "assert.ts",
  "jsr:@std/async@~1/delay": "async.ts",
  "jsr:@std/bytes@~1/concat": "bytes.ts",
  "jsr:@std/crypto@~1/timing-safe-equal": "crypto.ts",
};

/**
 * Fixtures kv-toolbox's tests read that a snapshot may lack (the repository
 * stores them as large binaries), with the size of the random stand-in written
 * in their place. The tests read them only as bytes.
 */
const FIXTURE_STAND_INS: Record<string, number> = {
  "_fixtures/mp4-7mb.mp4": 7 * 1024 * 1024,
  // The size kv-toolbox's getAsResponse test expects in content-length.
  "_fixtures/png-1mb.png": 1_050_986,
};

/** Where a prepared kv-toolbox snapshot is. */
export interface KvToolboxSnapshot {
  /** A copy of kv-toolbox's files (with `_fixtures/`), safe to add files to. */
  sourceDir: string;
  /** Path of the import map to pass as `--import-map` (with `--no-config`). */
  importMap: string;
  /** Fixtures the snapshot lacked, replaced by random bytes of about their size. */
  standIns: string[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function git(gitDir: string, args: string[]): Promise<Uint8Array | null> {
  const { success, stdout } = await new Deno.Command("git", {
    args: [`--git-dir=${gitDir}`, ...args],
    stdout: "piped",
    stderr: "null",
  }).output();
  return success ? stdout : null;
}

/** Writes HEAD's files of a (bare) git directory into `target`, skipping objects the snapshot lacks. */
async function extractGit(gitDir: string, target: string): Promise<void> {
  const listing = await git(gitDir, ["ls-tree", "-r", "-z", "HEAD"]);
  if (!listing) throw new Error(`Cannot list HEAD of the git directory ${gitDir}`);
  for (const line of new TextDecoder().decode(listing).split("\0")) {
    const match = /^\d+ blob ([0-9a-f]+)\t(.+)$/.exec(line);
    if (!match) continue;
    const [, object, path] = match as unknown as [string, string, string];
    const bytes = await git(gitDir, ["cat-file", "blob", object]);
    if (!bytes) continue;
    const file = `${target}/${path}`;
    await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(file, bytes);
  }
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.name === ".git") continue;
    if (entry.isDirectory) await copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else if (entry.isFile) await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

async function writeStandIns(sourceDir: string): Promise<string[]> {
  const written = [];
  for (const [path, size] of Object.entries(FIXTURE_STAND_INS)) {
    if (await exists(`${sourceDir}/${path}`)) continue;
    const bytes = new Uint8Array(size);
    // getRandomValues fills at most 65,536 bytes per call.
    for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
    await Deno.mkdir(`${sourceDir}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeFile(`${sourceDir}/${path}`, bytes);
    written.push(path);
  }
  return written;
}

/**
 * Makes a kv-toolbox snapshot loadable without JSR.
 *
 * @param snapshotDir Either a directory with kv-toolbox's files (`blob.ts`, …)
 * or a git directory of the repository (its HEAD is extracted).
 * @param workDir Where to write the copy of the sources and the import map.
 * @returns The source copy, the import map's path and the fixture stand-ins.
 * @throws {Error} When `snapshotDir` holds neither kv-toolbox's files nor a git repository.
 */
export async function prepareKvToolbox(
  snapshotDir: string,
  workDir?: string,
): Promise<KvToolboxSnapshot> {
  const dir = workDir ?? await Deno.makeTempDir({ prefix: "kv_toolbox_" });
  const sourceDir = `${dir}/src`;
  if (await exists(`${snapshotDir}/blob.ts`)) {
    await copyDir(snapshotDir, sourceDir);
  } else {
    const gitDir = await exists(`${snapshotDir}/repo/HEAD`) ? `${snapshotDir}/repo` : snapshotDir;
    if (!await exists(`${gitDir}/HEAD`)) {
      throw new Error(`Cannot find kv-toolbox's blob.ts or a git directory in ${snapshotDir}`);
    }
    await extractGit(gitDir, sourceDir);
  }
  const standIns = await writeStandIns(sourceDir);
  const imports = Object.fromEntries(
    Object.entries(SHIMS).map(([specifier, file]) => [specifier, new URL(file, STD).href]),
  );
  const importMap = `${dir}/import_map.json`;
  await Deno.writeTextFile(importMap, JSON.stringify({ imports }, null, 2));
  return { sourceDir, importMap, standIns };
}

if (import.meta.main) {
  const dir = Deno.args[0] ?? Deno.env.get("KV_TOOLBOX_DIR");
  if (!dir) {
    console.error("Usage: _kv_toolbox.ts KV_TOOLBOX_DIR (or set KV_TOOLBOX_DIR)");
    Deno.exit(2);
  }
  const { sourceDir, importMap, standIns } = await prepareKvToolbox(dir);
  console.log(`source:     ${sourceDir}\nimport map: ${importMap}`);
  for (const path of standIns) {
    console.log(`stand-in:   ${path} (random bytes; missing from the snapshot)`);
  }
}
