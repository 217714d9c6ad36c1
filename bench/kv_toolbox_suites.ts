/**
 * Runs kv-toolbox 0.30's own `blob.test.ts` and `crypto.test.ts` against
 * kvcrypt's compatibility module (`kv_toolbox.ts`), or with `--self` against
 * kv-toolbox itself, and prints passed/failed per test. The suites' code is
 * kv-toolbox's, not ours: it runs from a temp copy of the snapshot whose
 * `blob.ts` and `crypto.ts` are replaced by re-exports of `kv_toolbox.ts`,
 * with `./_kv_toolbox.ts`'s import map for the std modules. Not part of CI.
 *
 * ```sh
 * KV_TOOLBOX_DIR=/path/to/kv-toolbox deno task kv-toolbox:suites [--self]
 * ```
 *
 * Exits 1 when a test fails that is not listed in {@linkcode EXPECTED} with
 * its reason (or when a listed one passes: the list is then out of date).
 *
 * @module
 */

import { prepareKvToolbox } from "./_kv_toolbox.ts";

const MODULE = new URL("../kv_toolbox.ts", import.meta.url).href;

/** Why each test is expected to fail against `kv_toolbox.ts`. */
const EXPECTED: Record<string, string> = {
  "set - sets a blob value": "storage layout: lists kv-toolbox's `__kv_toolbox_blob__` sub-keys",
  "set - sets a DataView value": "storage layout: lists kv-toolbox's sub-keys",
  "set - sets a blob value as a stream": "storage layout: lists kv-toolbox's sub-keys",
  "set - sets a blob value as a blob":
    "storage layout: reads kv-toolbox's `__kv_toolbox_meta__` entry",
  "set - sets a blob value as a file":
    "storage layout: reads kv-toolbox's `__kv_toolbox_meta__` entry",
  "set - replacing value sizes keys properly": "storage layout: counts kv-toolbox's sub-keys",
  "remove - deletes a blob value":
    "storage layout: counts 3 entries under the key (kvcrypt's chunks live under its own prefix)",
  "get - option stream streams blob value":
    "storage layout: counts 63,000-byte stream chunks (kvcrypt's are up to 64 KiB)",
  "getAsStream - streams blob value":
    "storage layout: counts 63,000-byte stream chunks (kvcrypt's are up to 64 KiB)",
  "getAsResponse - contentDisposition is true":
    "safe headers: expects a bare filename= (kvcrypt adds the RFC 6266 filename*=)",
};

/** Tests that count a response's headers exactly: they fail where kvcrypt sends security headers. */
const HEADER_COUNTS: Record<string, string> = {
  "getAsResponse - set response correctly":
    "safe headers: counts exactly 2 headers (kvcrypt adds its security headers)",
  "getAsResponse - processes headers init":
    "safe headers: counts exactly 3 headers (kvcrypt adds its security headers)",
};

/** The security headers kvcrypt's getAsResponse sends, if any (they vary between versions). */
async function securityHeaders(): Promise<string[]> {
  const { getAsResponse, set } = await import(MODULE);
  const kv = await Deno.openKv(":memory:");
  try {
    await set(kv, ["probe"], new Blob(["<p>"], { type: "text/html" }));
    const response: Response = await getAsResponse(kv, ["probe"]);
    await response.body?.cancel();
    const usual = ["content-type", "content-length"];
    return [...response.headers.keys()].filter((name) => !usual.includes(name));
  } finally {
    kv.close();
  }
}

/** One test's outcome. */
interface Outcome {
  file: string;
  name: string;
  passed: boolean;
  message: string;
}

const SUITES = ["blob.test.ts", "crypto.test.ts"];

/** Replaces kv-toolbox's blob.ts and crypto.ts in the copy with re-exports of our module. */
async function pointAtKvcrypt(sourceDir: string): Promise<void> {
  const reexport = `export * from ${JSON.stringify(MODULE)};\n`;
  await Deno.writeTextFile(`${sourceDir}/blob.ts`, reexport);
  await Deno.writeTextFile(`${sourceDir}/crypto.ts`, reexport);
}

function unescapeXml(text: string): string {
  return text.replaceAll("&quot;", '"').replaceAll("&apos;", "'").replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">").replaceAll("&amp;", "&");
}

/** The test cases of a JUnit report `deno test --junit-path` wrote. */
function parseJunit(xml: string): Outcome[] {
  const outcomes: Outcome[] = [];
  const testcase =
    /<testcase name="([^"]*)" classname="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const match of xml.matchAll(testcase)) {
    const body = match[4] ?? "";
    const failure = /<failure message="([^"]*)"/.exec(body);
    outcomes.push({
      file: unescapeXml(match[2]!).replace(/^.*\//, ""),
      name: unescapeXml(match[1]!),
      passed: failure === null,
      // The error and, for an assertEquals, its actual and expected lines.
      message: failure === null
        ? ""
        : unescapeXml(failure[1]!).split("\n").slice(0, 3).map((line) => line.trim()).join(" "),
    });
  }
  return outcomes;
}

async function runSuites(sourceDir: string, importMap: string): Promise<Outcome[]> {
  const junit = `${sourceDir}/../junit.xml`;
  await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      // kv-toolbox's code and tests do not type-check against this Deno's
      // lib (Uint8Array<ArrayBufferLike> as BlobPart): run them unchecked.
      "--no-check",
      "--no-config",
      "--unstable-kv",
      "--allow-read",
      "--allow-write",
      `--import-map=${importMap}`,
      `--junit-path=${junit}`,
      ...SUITES,
    ],
    cwd: sourceDir,
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "null",
  }).output();
  return parseJunit(await Deno.readTextFile(junit));
}

/** Prints the outcomes (a failure with its reason and first message line); returns whether all are as expected. */
function report(outcomes: Outcome[], expected: Record<string, string>): boolean {
  let allAsExpected = true;
  for (const { file, name, passed, message } of outcomes) {
    const reason = expected[name];
    const asExpected = reason === undefined ? passed : !passed;
    if (!asExpected) allAsExpected = false;
    const mark = asExpected ? "" : passed ? "  UNEXPECTED PASS" : "  UNEXPECTED FAILURE";
    console.log(`${passed ? "passed" : "failed"}  ${file}  ${name}${mark}`);
    if (!passed) console.log(`        ${reason ?? "no reason listed"}\n        (${message})`);
  }
  const passed = outcomes.filter((outcome) => outcome.passed).length;
  console.log(`\n${passed} of ${outcomes.length} passed, ${outcomes.length - passed} failed`);
  return allAsExpected;
}

if (import.meta.main) {
  const self = Deno.args.includes("--self");
  const dir = Deno.args.find((arg) => !arg.startsWith("--")) ?? Deno.env.get("KV_TOOLBOX_DIR");
  if (!dir) {
    console.error("Usage: KV_TOOLBOX_DIR=… kv_toolbox_suites.ts [--self] (or pass the directory)");
    Deno.exit(2);
  }
  const { sourceDir, importMap, standIns } = await prepareKvToolbox(dir);
  for (const path of standIns) console.log(`stand-in: ${path} (random bytes; not in the snapshot)`);
  if (!self) await pointAtKvcrypt(sourceDir);
  console.log(`kv-toolbox's ${SUITES.join(" and ")} against ${self ? "kv-toolbox" : MODULE}\n`);
  const outcomes = await runSuites(sourceDir, importMap);
  if (outcomes.length === 0) {
    console.error("No test ran: see the suites' output with deno test in", sourceDir);
    Deno.exit(1);
  }
  let expected: Record<string, string> = {};
  if (!self) {
    const extra = await securityHeaders();
    console.log(`kvcrypt's extra response headers: ${extra.join(", ") || "none"}\n`);
    expected = extra.length === 0 ? EXPECTED : { ...EXPECTED, ...HEADER_COUNTS };
  }
  const ok = report(outcomes, expected);
  await Deno.remove(`${sourceDir}/..`, { recursive: true });
  if (!ok) Deno.exit(1);
}
