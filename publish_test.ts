/**
 * The JSR package ships the library and nothing else: the files
 * `deno publish --dry-run` lists are exactly the modules the exports reach
 * (statically or by dynamic import) plus the README, FORMAT.md, LICENSE,
 * CHANGELOG and deno.json; no test, test helper, fixture, benchmark, demo or
 * CI file.
 */

import assert from "node:assert/strict";

const ROOT = new URL("./", import.meta.url);
/** Files published next to the modules. */
const DOCUMENTS = ["CHANGELOG.md", "FORMAT.md", "LICENSE", "README.md", "deno.json"];
/** Names that must never ship, whatever the include list says. */
const NEVER = /(_test\.ts|\.bench\.ts|^demo\.ts|^(_testing|bench|node|testdata|examples|\.ci)\/)/;

/** Runs deno with `args` in the repository, returning stdout and stderr together. */
async function deno(args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, `deno ${args.join(" ")} failed:\n${text}`);
  return text;
}

/** Repository-relative paths of the local modules each export reaches. */
async function reachableModules(exports: string[]): Promise<Set<string>> {
  const reached = new Set<string>();
  for (const entry of exports) {
    const graph = JSON.parse(await deno(["info", "--json", entry])) as {
      modules: { specifier: string }[];
    };
    for (const { specifier } of graph.modules) {
      if (specifier.startsWith(ROOT.href)) reached.add(specifier.slice(ROOT.href.length));
    }
  }
  return reached;
}

Deno.test("deno publish ships exactly the exported modules and the package documents", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const exports = Object.values(config.exports as Record<string, string>);
  const output = await deno(["publish", "--dry-run", "--allow-dirty"]);
  const shipped = [...output.matchAll(/^\s+(file:\/\/\S+)/gm)]
    .map((match) => match[1]!.slice(ROOT.href.length))
    .sort();
  assert.ok(shipped.length > 0, `no file list in:\n${output}`);
  for (const path of shipped) assert.doesNotMatch(path, NEVER, `${path} must not be published`);
  const expected = [...await reachableModules(exports), ...DOCUMENTS].sort();
  assert.deepEqual(shipped, expected);
});
