/**
 * The layering the README's "Architecture" section describes, checked
 * against the code: every library file is listed in exactly one layer, and
 * every import of a library file points to its own layer or one below.
 */

import assert from "node:assert/strict";

const ROOT = new URL("./", import.meta.url);
/** The README's layer headings, bottom up. */
const LAYERS = ["Helpers", "Formats", "Chunks", "Protocols", "Public modules"] as const;

/** Each file the Architecture section lists, with the index of its layer (throws on a file listed twice). */
function layersOfReadme(readme: string): Map<string, number> {
  const start = readme.indexOf("\n## Architecture");
  assert.ok(start >= 0, "README has an Architecture section");
  const end = readme.indexOf("\n## ", start + 1);
  const layers = new Map<string, number>();
  let layer = -1;
  for (const line of readme.slice(start, end).split("\n")) {
    const heading = /^\*\*(.+?)\*\*/.exec(line)?.[1];
    if (heading !== undefined) layer = LAYERS.indexOf(heading as typeof LAYERS[number]);
    const file = /^\| `([^`/]+\.ts)`/.exec(line)?.[1];
    if (file === undefined) continue;
    assert.ok(layer >= 0, `${file} is listed under a layer heading`);
    assert.ok(!layers.has(file), `${file} is listed once`);
    layers.set(file, layer);
  }
  return layers;
}

/** The library's files: the root's modules that are not tests, benchmarks or the demo. */
async function libraryFiles(): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(ROOT)) {
    const { name } = entry;
    if (!entry.isFile || !name.endsWith(".ts")) continue;
    if (name.endsWith("_test.ts") || name.endsWith(".bench.ts") || name === "demo.ts") continue;
    files.push(name);
  }
  return files.sort();
}

/** The root modules a file imports (static, type-only, re-exports and dynamic imports). */
function importsOf(source: string): string[] {
  const found = source.matchAll(/(?:from|import)\s*\(?\s*"\.\/([^"/]+\.ts)"/g);
  return [...new Set([...found].map((match) => match[1]!))];
}

Deno.test("every library file is in one layer of the README's Architecture section", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const layers = layersOfReadme(readme);
  const files = await libraryFiles();
  assert.ok(files.length > 30, "the library's files were found");
  assert.deepEqual(files.filter((file) => !layers.has(file)), [], "files missing from the README");
  assert.deepEqual([...layers.keys()].filter((file) => !files.includes(file)), [], "listed files");
});

Deno.test("library imports point to the same layer or one below, never up", async () => {
  const layers = layersOfReadme(await Deno.readTextFile(new URL("README.md", ROOT)));
  const upward: string[] = [];
  for (const file of await libraryFiles()) {
    const own = layers.get(file)!;
    for (const target of importsOf(await Deno.readTextFile(new URL(file, ROOT)))) {
      const theirs = layers.get(target);
      assert.ok(theirs !== undefined, `${file} imports ${target}, which is not a library file`);
      if (theirs > own) upward.push(`${file} (${LAYERS[own]}) → ${target} (${LAYERS[theirs]})`);
    }
  }
  assert.deepEqual(upward, []);
});

Deno.test("the layer check sees an upward import", () => {
  const layers = layersOfReadme(
    "\n## Architecture\n\n**Helpers**\n\n| `_a.ts` | a |\n\n**Public modules**\n\n| `b.ts` | b |\n\n## Next\n",
  );
  assert.deepEqual([...layers], [["_a.ts", 0], ["b.ts", 4]]);
  assert.deepEqual(importsOf('import { x } from "./b.ts";\nexport type { Y } from "./_a.ts";'), [
    "b.ts",
    "_a.ts",
  ]);
});
