/**
 * Blob scaling benchmark: does kvcrypt's chunk pipeline keep up with Deno KV
 * itself, stay linear in the value's size, and stream in bounded memory?
 *
 * `deno task bench:scaling` measures, in one run:
 *
 * 1. Throughput (MiB/s, best of a few trials) for 1, 16, 64 and 256 MiB on a
 *    file-backed KV (a fresh SQLite file per trial, so every write lands in
 *    an empty store): `set` from a stream of 1 MiB pieces, `get` into one
 *    Uint8Array, and `getAsStream` fully consumed. Next to them, the raw KV
 *    ceiling (bench/_scaling_raw_kv.ts): the same bytes as 12-chunk atomics
 *    of 65,536-byte values, committed one at a time and with the library's
 *    in-flight concurrency, and read back with one `kv.list`, discarded and
 *    copied into one buffer. The lib/raw ratios show what the library's own
 *    work costs (record, version entry, checks, per-batch lists,
 *    validation); 256 MiB / 1 MiB shows whether that cost grows with size.
 * 2. Memory: the peak resident set size of a child process that pushes a
 *    256 MiB stream through `set` and `getAsStream`, next to a child doing
 *    the same through raw KV (bench/_rss_child.ts), a few runs each.
 *    Streaming is the library's promise of bounded memory, so its peak
 *    should stay close to raw KV's, far below the value's size.
 *
 * 3. Small and medium blobs side by side (bench/_small_blobs.ts, in a child
 *    process): `set`, `get` and a repeated `get` of 64 KiB, 1 MiB and 16 MiB
 *    for raw KV, kvcrypt plain and AES-256 and, when `KV_TOOLBOX_DIR` names
 *    a kv-toolbox 0.30 snapshot (its files or its git directory), kv-toolbox
 *    plain and AES-256, loaded through bench/_kv_toolbox.ts's import map.
 *    `--small` runs this part only.
 *
 * Every timing includes generating the source stream, for the library and
 * raw KV alike, and every read is checked (byte count; stamps for buffers).
 * The run prints PASS or MISS next to every target. It reports the pipeline
 * constants of `_limits.ts` it ran with, and the load average before and
 * after: the best-of-N trials absorb short bursts of other work on the
 * machine, not a busy machine.
 *
 * @module
 */

import { get, getAsStream, set } from "../blob.ts";
import * as limits from "../_limits.ts";
import { CHUNKS_PER_ATOMIC, PLAIN_CHUNK_SIZE, WRITE_ATOMICS_IN_FLIGHT } from "../_limits.ts";
import { rawId, rawRead, rawReadIntoBuffer, rawWrite } from "./_scaling_raw_kv.ts";
import { RSS_MODES, type RssMode, type RssReport } from "./_rss_child.ts";
import { MIB, randomTemplate, sourceStream, verifySource } from "./_scaling_source.ts";
import { prepareKvToolbox } from "./_kv_toolbox.ts";

/** How this benchmark is run. */
const COMMAND = "deno task bench:scaling";
/** Value sizes measured, in MiB. */
const SIZES_MIB = [1, 16, 64, 256] as const;
/**
 * Trials per size; the best counts, which filters out other processes
 * sharing the machine. More for small sizes, where one trial is milliseconds.
 */
const TRIALS: Record<(typeof SIZES_MIB)[number], number> = { 1: 9, 16: 7, 64: 5, 256: 3 };
/** Smallest share of the 1 MiB throughput the 256 MiB throughput should reach. */
const LINEARITY_TARGET = 0.7;
/** Smallest library / raw KV throughput ratio at {@linkcode LIB_RAW_SIZE_MIB}. */
const LIB_RAW_TARGET = 0.7;
/** Size at which the library is held to {@linkcode LIB_RAW_TARGET}. */
const LIB_RAW_SIZE_MIB = 64;
/** Size pushed through each memory child, in MiB. */
const RSS_SIZE_MIB = 256;
/** Runs of each memory child; their medians are compared (a single peak varies by ±30 MiB). */
const RSS_RUNS = 3;
/** Most the library's median peak RSS may exceed raw KV's, in MiB. */
const RSS_SLACK_MIB = 64;
/** Key of the blob every trial writes. */
const BLOB_KEY: Deno.KvKey = ["bench", "blob"];
/** The memory child and the config it runs under (for `unstable: ["kv"]`). */
const RSS_CHILD = new URL("./_rss_child.ts", import.meta.url);
/** The side-by-side child of part 3; it runs without the config, as kv-toolbox needs its own imports. */
const SMALL_CHILD = new URL("./_small_blobs.ts", import.meta.url);
/** Where a kv-toolbox snapshot is, for part 3 (never part of this repository). */
const KV_TOOLBOX_ENV = "KV_TOOLBOX_DIR";
const CONFIG = new URL("../deno.json", import.meta.url);
/** Permissions of the memory child: Deno 2.9 reads /proc/self/status only with all of them. */
const RSS_CHILD_FLAGS = ["--allow-all"];
/** Names of the `_limits.ts` constants that shape the read and write pipelines. */
const PIPELINE_CONSTANT = /IN_FLIGHT|^READ_BATCH/;
/** Load average per CPU, before the run, above which the run warns that the machine is busy. */
const BUSY_LOAD = 0.5;
/** Width of a table column. */
const COLUMN = 8;

/** Best throughputs of one size, MiB/s. */
interface Throughput {
  libSet: number;
  rawWriteSequential: number;
  rawWriteConcurrent: number;
  libGet: number;
  libStream: number;
  rawRead: number;
  rawReadBuffered: number;
}

// ---------------------------------------------------------------------------
// Measuring.

/** Runs `work` once after a full GC; returns its result and its throughput for `bytes`, MiB/s. */
async function timed<T>(
  bytes: number,
  work: () => Promise<T>,
): Promise<{ result: T; mibs: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const started = performance.now();
  const result = await work();
  const seconds = (performance.now() - started) / 1000;
  return { result, mibs: bytes / MIB / seconds };
}

/** Runs `work` on a KV in a fresh SQLite file under `root`, then closes and deletes it. */
async function withFreshKv<T>(root: string, work: (kv: Deno.Kv) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ dir: root });
  const kv = await Deno.openKv(`${dir}/kv.sqlite`);
  try {
    return await work(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function consume(stream: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.length;
  return bytes;
}

function expectBytes(what: string, seen: number, bytes: number): void {
  if (seen !== bytes) throw new Error(`${what} read ${seen} bytes, expected ${bytes}`);
}

/** Times a buffered `get` and checks its bytes; returns MiB/s only, so the buffer can go. */
async function timedGet(kv: Deno.Kv, bytes: number): Promise<number> {
  const { result, mibs } = await timed(bytes, async () => (await get(kv, BLOB_KEY)).value);
  verifySource(result ?? new Uint8Array(0), bytes);
  return mibs;
}

/** One trial of the library on an empty store: set, get, getAsStream; MiB/s. */
async function libraryTrial(kv: Deno.Kv, bytes: number, template: Uint8Array) {
  const libSet = await timed(bytes, () => set(kv, BLOB_KEY, sourceStream(bytes, template)));
  const libGet = await timedGet(kv, bytes);
  const libStream = await timed(bytes, async () => consume((await getAsStream(kv, BLOB_KEY))!));
  expectBytes("getAsStream", libStream.result, bytes);
  return { libSet: libSet.mibs, libGet, libStream: libStream.mibs };
}

/** Times a raw read into one buffer and checks its bytes; returns MiB/s only. */
async function timedRawReadIntoBuffer(kv: Deno.Kv, id: Uint8Array, bytes: number) {
  const { result, mibs } = await timed(bytes, () => rawReadIntoBuffer(kv, id, bytes));
  verifySource(result, bytes);
  return mibs;
}

/** Times a raw write with `inFlight` commits pending into `kv`; returns the id written and MiB/s. */
async function timedRawWrite(kv: Deno.Kv, bytes: number, template: Uint8Array, inFlight: number) {
  const id = rawId();
  const write = await timed(bytes, () => rawWrite(kv, id, sourceStream(bytes, template), inFlight));
  return { id, mibs: write.mibs };
}

/**
 * One trial of raw KV on an empty store, MiB/s: written with the library's
 * in-flight concurrency, then read back (discarded, then into one buffer).
 * The reads use this store only, so they get as many trials as the library's.
 */
async function rawTrial(kv: Deno.Kv, bytes: number, template: Uint8Array) {
  const write = await timedRawWrite(kv, bytes, template, WRITE_ATOMICS_IN_FLIGHT);
  const read = await timed(bytes, () => rawRead(kv, write.id));
  expectBytes("raw list", read.result, bytes);
  const readBuffered = await timedRawReadIntoBuffer(kv, write.id, bytes);
  return { rawWriteConcurrent: write.mibs, rawRead: read.mibs, rawReadBuffered: readBuffered };
}

/** One trial of everything, each part on its own fresh KV file. */
async function trial(root: string, bytes: number, template: Uint8Array): Promise<Throughput> {
  const lib = await withFreshKv(root, (kv) => libraryTrial(kv, bytes, template));
  const raw = await withFreshKv(root, (kv) => rawTrial(kv, bytes, template));
  const sequential = await withFreshKv(root, (kv) => timedRawWrite(kv, bytes, template, 1));
  return { ...lib, ...raw, rawWriteSequential: sequential.mibs };
}

/** The better of two results, metric by metric. */
function bestEach(a: Throughput, b: Throughput): Throughput {
  const best = { ...a };
  for (const metric of Object.keys(best) as (keyof Throughput)[]) {
    best[metric] = Math.max(a[metric], b[metric]);
  }
  return best;
}

/** The best of `trials` trials, metric by metric. */
async function bestOf(
  root: string,
  bytes: number,
  trials: number,
  template: Uint8Array,
): Promise<Throughput> {
  let best = await trial(root, bytes, template);
  for (let i = 1; i < trials; i++) best = bestEach(best, await trial(root, bytes, template));
  return best;
}

/** The raw write ceiling: the faster of sequential and concurrent commits. */
function rawWriteCeiling(result: Throughput): number {
  return Math.max(result.rawWriteSequential, result.rawWriteConcurrent);
}

// ---------------------------------------------------------------------------
// Memory children.

/** The memory children, `RSS_RUNS` of each mode, alternating so load affects both alike. */
async function measureMemory(): Promise<Record<RssMode, RssReport[]>> {
  const reports: Record<RssMode, RssReport[]> = { raw: [], lib: [] };
  for (let run = 0; run < RSS_RUNS; run++) {
    for (const mode of RSS_MODES) reports[mode].push(await runRssChild(mode));
  }
  return reports;
}

async function runRssChild(mode: RssMode): Promise<RssReport> {
  const args = [
    "run",
    ...RSS_CHILD_FLAGS,
    "--config",
    decodeURIComponent(CONFIG.pathname),
    decodeURIComponent(RSS_CHILD.pathname),
    mode,
    String(RSS_SIZE_MIB),
  ];
  const output = await new Deno.Command(Deno.execPath(), { args, stdin: "null" }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  if (!output.success) {
    throw new Error(`memory child "${mode}" failed (exit ${output.code}):\n${text(output.stderr)}`);
  }
  return JSON.parse(text(output.stdout).split("\n").at(-1)!) as RssReport;
}

// ---------------------------------------------------------------------------
// Printing.

/** The 1, 5 and 15 minute load averages (needs `--allow-sys=loadavg`); undefined without permission. */
function loadAverages(): number[] | undefined {
  try {
    return Deno.loadavg();
  } catch {
    return undefined;
  }
}

function loadAverage(): string {
  const loads = loadAverages();
  return loads?.map((load) => load.toFixed(2)).join(" ") ?? "unknown (needs --allow-sys=loadavg)";
}

/** Warns when other work already keeps the machine's CPUs busy: the numbers will be low and noisy. */
function warnIfBusy(): void {
  const load = loadAverages()?.[0] ?? 0;
  if (load < BUSY_LOAD * navigator.hardwareConcurrency) return;
  console.log(
    `WARNING: load average ${load.toFixed(2)} on ${navigator.hardwareConcurrency} CPUs ` +
      "before the benchmark started: other work is running, expect low and noisy numbers",
  );
}

const fixed = (value: number, digits = 1) => value.toFixed(digits).padStart(COLUMN);
const verdict = (ok: boolean) => ok ? "PASS" : "MISS";

/** The library's pipeline constants as they are in this checkout (`NAME=value, ...`). */
function pipeline(): string {
  return Object.entries(limits)
    .filter(([name]) => PIPELINE_CONSTANT.test(name))
    .map(([name, value]) => `${name}=${value}`)
    .join(", ");
}

/** The table's columns after the size: header and cell of one size's results. */
const COLUMNS: readonly { name: string; cell: (r: Throughput) => string }[] = [
  { name: "lib set", cell: (r) => fixed(r.libSet) },
  { name: "raw w 1", cell: (r) => fixed(r.rawWriteSequential) },
  { name: `raw w ${WRITE_ATOMICS_IN_FLIGHT}`, cell: (r) => fixed(r.rawWriteConcurrent) },
  { name: "set/raw", cell: (r) => fixed(r.libSet / rawWriteCeiling(r), 2) },
  { name: "lib get", cell: (r) => fixed(r.libGet) },
  { name: "lib strm", cell: (r) => fixed(r.libStream) },
  { name: "raw read", cell: (r) => fixed(r.rawRead) },
  { name: "get/raw", cell: (r) => fixed(r.libGet / r.rawRead, 2) },
  { name: "strm/raw", cell: (r) => fixed(r.libStream / r.rawRead, 2) },
  { name: "raw buf", cell: (r) => fixed(r.rawReadBuffered) },
  { name: "get/buf", cell: (r) => fixed(r.libGet / r.rawReadBuffered, 2) },
];

/** What the columns mean. */
const LEGEND = [
  "lib set: set from a stream of 1 MiB pieces; set/raw: lib set / the faster raw write",
  "raw w 1, raw w N: raw 12-chunk atomics, one at a time / N in flight (WRITE_ATOMICS_IN_FLIGHT)",
  "lib get: get into one Uint8Array; lib strm: getAsStream, consumed",
  "raw read: one kv.list over the chunks, discarded; raw buf: the same, copied into one buffer",
  "get/raw, strm/raw: lib read / raw read; get/buf: lib get / raw buf",
];

function printHeader(root: string, throughput: boolean): void {
  console.log(`$ ${COMMAND}`);
  const { deno, v8, typescript } = Deno.version;
  console.log(
    `deno ${deno} (v8 ${v8}, typescript ${typescript}), ` +
      `${navigator.hardwareConcurrency} CPUs, load average ${loadAverage()}`,
  );
  warnIfBusy();
  console.log(`KV: a fresh SQLite file per trial under ${root}`);
  console.log(
    `chunks: ${PLAIN_CHUNK_SIZE} B, ${CHUNKS_PER_ATOMIC} per atomic; pipeline: ${pipeline()}`,
  );
  if (!throughput) return;
  const trials = SIZES_MIB.map((size) => `${TRIALS[size]} (${size} MiB)`).join(", ");
  console.log(`\n1. Throughput, MiB/s, best of ${trials}`);
  for (const line of LEGEND) console.log(`   ${line}`);
  const names = ["size MiB", ...COLUMNS.map((column) => column.name)];
  console.log(names.map((name) => name.padStart(COLUMN)).join(" "));
}

function printRow(sizeMib: number, result: Throughput): void {
  const cells = COLUMNS.map((column) => column.cell(result));
  console.log([String(sizeMib).padStart(COLUMN), ...cells].join(" "));
}

function printTarget(label: string, value: number, target: number): boolean {
  const ok = value >= target;
  console.log(
    `  ${label.padEnd(44)} ${value.toFixed(2)}  (target >= ${target.toFixed(2)})  ${verdict(ok)}`,
  );
  return ok;
}

function printThroughputTargets(results: Map<number, Throughput>): boolean[] {
  const small = results.get(SIZES_MIB[0])!;
  const large = results.get(SIZES_MIB.at(-1)!)!;
  const atTarget = results.get(LIB_RAW_SIZE_MIB)!;
  const span = `${SIZES_MIB.at(-1)} MiB / ${SIZES_MIB[0]} MiB`;
  console.log("\nLinearity and overhead:");
  const oks = [
    printTarget(`set linearity (${span})`, large.libSet / small.libSet, LINEARITY_TARGET),
    printTarget(`get linearity (${span})`, large.libGet / small.libGet, LINEARITY_TARGET),
    printTarget(
      `lib set / raw write at ${LIB_RAW_SIZE_MIB} MiB`,
      atTarget.libSet / rawWriteCeiling(atTarget),
      LIB_RAW_TARGET,
    ),
    // Like for like: a buffered get against a raw list copied into one
    // buffer, a stream against a raw list whose chunks are dropped.
    printTarget(
      `lib get / raw buf at ${LIB_RAW_SIZE_MIB} MiB`,
      atTarget.libGet / atTarget.rawReadBuffered,
      LIB_RAW_TARGET,
    ),
    printTarget(
      `lib stream / raw read at ${LIB_RAW_SIZE_MIB} MiB`,
      atTarget.libStream / atTarget.rawRead,
      LIB_RAW_TARGET,
    ),
  ];
  const info = (label: string, value: number) =>
    console.log(`  ${label.padEnd(44)} ${value.toFixed(2)}  (info)`);
  info(`stream linearity (${span})`, large.libStream / small.libStream);
  // The floor of get linearity: the same list copied into one fresh buffer, no library.
  info(`raw buf linearity (${span})`, large.rawReadBuffered / small.rawReadBuffered);
  info(
    `lib get / raw read (dropped) at ${LIB_RAW_SIZE_MIB} MiB`,
    atTarget.libGet / atTarget.rawRead,
  );
  return oks;
}

const mib = (kib: number) => (kib / 1024).toFixed(1);

/** The median of `values` (the upper one for an even count). */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function printMemoryLine(label: string, reports: readonly RssReport[]): number {
  const peak = median(reports.map((report) => report.peakKiB));
  const runs = reports.map((report) => mib(report.peakKiB)).join(", ");
  const polled = reports.map((report) => mib(report.polledPeakKiB)).join(", ");
  const start = median(reports.map((report) => report.startKiB));
  console.log(
    `  ${label.padEnd(37)} median peak ${mib(peak).padStart(6)}  ` +
      `(runs ${runs}; polled ${polled}; start ${mib(start)})`,
  );
  return peak;
}

function printMemory(reports: Record<RssMode, RssReport[]>): boolean {
  console.log(
    `\n2. Peak RSS (VmHWM), MiB, of a child process pushing ${RSS_SIZE_MIB} MiB ` +
      `through and back, ${RSS_RUNS} runs each`,
  );
  const raw = printMemoryLine("raw KV (atomics as it arrives, list)", reports.raw);
  const lib = printMemoryLine("library (set stream, getAsStream)", reports.lib);
  const difference = (lib - raw) / 1024;
  const ok = difference <= RSS_SLACK_MIB;
  const target = `(target <= ${RSS_SLACK_MIB} MiB)`;
  console.log(`  library - raw (medians): ${difference.toFixed(1)} MiB  ${target}  ${verdict(ok)}`);
  return ok;
}

// ---------------------------------------------------------------------------
// Main.

async function measureThroughput(root: string): Promise<Map<number, Throughput>> {
  const template = randomTemplate();
  // Warm up the JIT and the KV binding so the first measured trial is not the slowest.
  await trial(root, SIZES_MIB[0] * MIB, template);
  const results = new Map<number, Throughput>();
  for (const size of SIZES_MIB) {
    const result = await bestOf(root, size * MIB, TRIALS[size], template);
    printRow(size, result);
    results.set(size, result);
  }
  return results;
}

/** Runs part 3 in a child process, prints its report, and returns its PASS/MISS verdicts. */
async function measureSmallBlobs(): Promise<boolean[]> {
  const snapshot = Deno.env.get(KV_TOOLBOX_ENV);
  const work = await Deno.makeTempDir({ prefix: "kvcrypt_kv_toolbox_" });
  try {
    const flags = ["--no-config", "--unstable-kv", "--allow-read", "--allow-write", "--allow-env"];
    const args = [SMALL_CHILD.pathname];
    if (snapshot) {
      const { sourceDir, importMap } = await prepareKvToolbox(snapshot, work);
      flags.push(`--import-map=${importMap}`);
      args.push("--toolbox", sourceDir);
    }
    console.log(
      `\n3. Small and medium blobs side by side: set, get, get again; ` +
        `kv-toolbox from ${
          snapshot ? `${KV_TOOLBOX_ENV}=${snapshot}` : `nowhere (${KV_TOOLBOX_ENV} unset)`
        }`,
    );
    const { success, stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, "--v8-flags=--expose-gc", ...args],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const report = new TextDecoder().decode(stdout);
    for (const line of report.trimEnd().split("\n")) console.log(`  ${line}`);
    if (!success) throw new Error("the side-by-side child failed");
    return report.split("\n").filter((line) => /(PASS|MISS)$/.test(line))
      .map((line) => line.endsWith("PASS"));
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const root = await Deno.makeTempDir({ prefix: "kvcrypt_scaling_" });
  const all = !Deno.args.includes("--small");
  printHeader(root, all);
  const oks: boolean[] = [];
  try {
    if (all) oks.push(...printThroughputTargets(await measureThroughput(root)));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  if (all) oks.push(printMemory(await measureMemory()));
  oks.push(...await measureSmallBlobs());
  const misses = oks.filter((ok) => !ok).length;
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  console.log(
    `\n${oks.length - misses} of ${oks.length} targets met; ran ${seconds} s; ` +
      `load average ${loadAverage()}`,
  );
}

if (import.meta.main) await main();
