/**
 * Benchmark (not in CI): one large document, 6 GiB by default (past the 5 GB
 * where other services stop), uploaded and downloaded through the running
 * service with the CLI client, SHA-256 compared; prints the throughput of
 * each direction and the app's peak RSS.
 *
 * ```sh
 * deno task bench:documents             # 6 GiB: needs about 3 x 6 GiB of free disk
 * deno task bench:documents --mib 1024  # another size
 * ```
 *
 * The key service and the app run as child processes on 127.0.0.1 with
 * their KV files in a temp folder (`TMPDIR`); the source file and the
 * download go there too, and everything is deleted at the end.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { Servers } from "./_servers_test_util.ts";

const MIB = 1024 * 1024;
/** Bytes generated per write of the source file. */
const PIECE = 4 * MIB;
/** getRandomValues fills at most 65,536 bytes per call. */
const RANDOM_MAX = 65_536;
const CLIENT = new URL("./client.ts", import.meta.url).href;

function sizeFromArgs(args: string[]): number {
  const at = args.indexOf("--mib");
  const mib = at < 0 ? 6 * 1024 : Number(args[at + 1]);
  if (!Number.isSafeInteger(mib) || mib <= 0) {
    console.error("bench: Cannot run: --mib takes a whole number of MiB");
    Deno.exit(2);
  }
  return mib * MIB;
}

/** Writes `size` random bytes to `path` and returns their SHA-256. */
async function writeSource(path: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const piece = new Uint8Array(PIECE);
  try {
    for (let written = 0; written < size;) {
      const length = Math.min(PIECE, size - written);
      const part = piece.subarray(0, length);
      for (let i = 0; i < length; i += RANDOM_MAX) {
        crypto.getRandomValues(part.subarray(i, i + RANDOM_MAX));
      }
      hash.update(part);
      for (let offset = 0; offset < length;) offset += await file.write(part.subarray(offset));
      written += length;
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  for await (const piece of file.readable) hash.update(piece);
  return hash.digest("hex");
}

/** Runs the CLI client; resolves to its run time in seconds and its stdout. */
async function runClient(args: string[], token: string): Promise<[number, string]> {
  const started = performance.now();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", "--allow-write", "--allow-env", CLIENT, ...args],
    env: { DOCUMENTS_TOKEN: token },
  }).output();
  const elapsed = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`client ${args[0]} failed: ${new TextDecoder().decode(stderr)}`);
  return [elapsed, new TextDecoder().decode(stdout)];
}

async function main(): Promise<void> {
  const size = sizeFromArgs(Deno.args);
  const servers = await Servers.start();
  const source = `${servers.dir}/source.bin`;
  const copy = `${servers.dir}/copy.bin`;
  try {
    const token = await servers.addUser("bench");
    console.log(`bench: writing ${size / MIB} MiB of random bytes to ${source}`);
    const sourceHash = await writeSource(source, size);
    const before = await servers.appPeakRss();

    const [upSeconds, uploaded] = await runClient(["upload", source, "--url", servers.url], token);
    const id = uploaded.trimEnd().split("\n").at(-1)!;
    const afterUpload = await servers.appPeakRss();
    const [downSeconds] = await runClient(
      ["download", id, "-o", copy, "--url", servers.url],
      token,
    );
    const peak = await servers.appPeakRss();
    const copyHash = await hashFile(copy);
    const same = copyHash === sourceHash;

    const mib = size / MIB;
    console.log(`bench: ${mib} MiB (${(size / 1e9).toFixed(2)} GB) through the CLI client`);
    console.log(`  upload    ${upSeconds.toFixed(1)} s  ${(mib / upSeconds).toFixed(1)} MiB/s`);
    console.log(`  download  ${downSeconds.toFixed(1)} s  ${(mib / downSeconds).toFixed(1)} MiB/s`);
    console.log(
      `  app peak RSS  ${(before / MIB).toFixed(0)} MiB before, ${
        (afterUpload / MIB).toFixed(0)
      } MiB after the upload, ${(peak / MIB).toFixed(0)} MiB after the download`,
    );
    console.log(`  SHA-256 ${same ? "equal" : "DIFFERENT"}: ${sourceHash}`);
    if (!same) Deno.exitCode = 1;
  } finally {
    await servers.stop();
  }
}

if (import.meta.main) await main();
