/**
 * kvcrypt on Node 20 with `@deno/kv`, both ways, through SQLite files: Node
 * (node/check.mjs, on mod.ts bundled) reads what Deno wrote and round-trips
 * its own values, and Deno reads what Node wrote. Needs `node` and `npm` on
 * PATH (CI has both): without them this test fails, it never skips.
 */

import assert from "node:assert/strict";
import {
  denoSideChecks,
  prepareNodeCheck,
  runNodeSide,
  runReadmeExample,
  writeDenoSide,
} from "./node/run.ts";
import { withKv, withTempDir } from "./_testing/util.ts";

Deno.test("Node with @deno/kv reads Deno's SQLite file, and Deno reads Node's", async (t) => {
  await withTempDir(async (dir) => {
    const files = await prepareNodeCheck(dir);
    const key = await writeDenoSide(dir);
    const node = await runNodeSide(dir, files, key);
    assert.equal(node.code, 0, `node/check.mjs failed:\n${node.output}`);
    assert.equal(node.failed, 0, node.output);
    // Every check in node/check.mjs ran (a script that stopped early would report fewer).
    const checks = (await Deno.readTextFile(new URL("node/check.mjs", import.meta.url)))
      .match(/^await check\(/gm)?.length;
    assert.equal(node.passed, checks, node.output);
    const example = await runReadmeExample(dir, files, key);
    assert.equal(example.code, 0, `the README's Node example failed:\n${example.output}`);
    await withKv(async (kv) => {
      for (const check of denoSideChecks(dir)) {
        await t.step(check.name, () => check.run(kv, key));
      }
    }, { path: `${dir}/node.sqlite` });
  });
});
