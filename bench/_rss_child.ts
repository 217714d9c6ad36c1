/**
 * Child process of `bench/blob_scaling.ts` for the memory measurement: in a
 * fresh process, pushes one stream of `<MiB>` MiB through a file-backed KV
 * and back, then prints its peak resident set size as one JSON line.
 *
 * `deno run --allow-all bench/_rss_child.ts <lib|raw> <MiB>`
 *
 * - `lib`: `set` from a stream, then `getAsStream` consumed and discarded.
 * - `raw`: the same stream as chunk atomics written as it arrives, then one
 *   `kv.list` over the chunks, discarded.
 *
 * The peak is the kernel's high-water mark (VmHWM in /proc/self/status),
 * which also counts memory outside the JS heap (KV buffers, SQLite). Deno
 * 2.9 reads /proc/self only with `--allow-all`, so the child needs it. As a
 * cross-check the child also polls `Deno.memoryUsage().rss`.
 *
 * @module
 */

import { getAsStream, set } from "../blob.ts";
import { WRITE_ATOMICS_IN_FLIGHT } from "../_limits.ts";
import { rawId, rawRead, rawWrite } from "./_scaling_raw_kv.ts";
import { MIB, randomTemplate, sourceStream } from "./_scaling_source.ts";

/** What the child prints: peak and starting resident set, in KiB. */
export interface RssReport {
  /** `lib` or `raw`. */
  mode: string;
  /** Bytes pushed through. */
  bytes: number;
  /** Resident set size before the work started (runtime, modules, source template). */
  startKiB: number;
  /** Peak resident set size over the process's life (VmHWM). */
  peakKiB: number;
  /** Largest `Deno.memoryUsage().rss` seen by polling during the work. */
  polledPeakKiB: number;
}

/** The modes the child runs. */
export const RSS_MODES = ["lib", "raw"] as const;
/** One of {@linkcode RSS_MODES}. */
export type RssMode = typeof RSS_MODES[number];

const BLOB_KEY: Deno.KvKey = ["bench", "rss"];
/** Interval of the RSS cross-check poll, ms. */
const POLL_MS = 5;

/** A field of /proc/self/status in KiB (e.g. `VmHWM`). */
function procStatusKiB(field: string): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const match = status.match(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m"));
  if (match === null) throw new Error(`/proc/self/status has no ${field}`);
  return Number(match[1]);
}

/** Runs `work` while polling the RSS; returns its result and the largest RSS seen, KiB. */
async function polled<T>(work: () => Promise<T>): Promise<{ result: T; peakKiB: number }> {
  let peak = 0;
  const sample = () => peak = Math.max(peak, Deno.memoryUsage().rss);
  const timer = setInterval(sample, POLL_MS);
  try {
    const result = await work();
    sample();
    return { result, peakKiB: Math.round(peak / 1024) };
  } finally {
    clearInterval(timer);
  }
}

async function discard(stream: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.length;
  return bytes;
}

async function throughLibrary(kv: Deno.Kv, stream: ReadableStream<Uint8Array>): Promise<number> {
  await set(kv, BLOB_KEY, stream);
  const read = await getAsStream(kv, BLOB_KEY);
  if (read === null) throw new Error("the blob just written is missing");
  return await discard(read);
}

async function throughRawKv(kv: Deno.Kv, stream: ReadableStream<Uint8Array>): Promise<number> {
  const id = rawId();
  await rawWrite(kv, id, stream, WRITE_ATOMICS_IN_FLIGHT);
  return await rawRead(kv, id);
}

async function run(mode: RssMode, bytes: number): Promise<RssReport> {
  const dir = await Deno.makeTempDir({ prefix: "kvcrypt_rss_" });
  try {
    const kv = await Deno.openKv(`${dir}/kv.sqlite`);
    try {
      const stream = sourceStream(bytes, randomTemplate());
      const startKiB = procStatusKiB("VmRSS");
      const through = mode === "lib" ? throughLibrary : throughRawKv;
      const { result: seen, peakKiB: polledPeakKiB } = await polled(() => through(kv, stream));
      if (seen !== bytes) throw new Error(`read back ${seen} bytes, expected ${bytes}`);
      return { mode, bytes, startKiB, peakKiB: procStatusKiB("VmHWM"), polledPeakKiB };
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const [mode, mib] = Deno.args;
  if (!RSS_MODES.includes(mode as RssMode) || !(Number(mib) > 0)) {
    throw new Error(`usage: _rss_child.ts <${RSS_MODES.join("|")}> <MiB>`);
  }
  const report = await run(mode as RssMode, Number(mib) * MIB);
  console.log(JSON.stringify(report));
}
