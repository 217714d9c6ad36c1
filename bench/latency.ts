/**
 * How many network round trips kvcrypt's reads and writes pay on a remote
 * store. Every KV call goes through {@linkcode LatencyKv}, which delays it by
 * a simulated round trip time (RTT); for each RTT, size and format the
 * script prints elapsed time, calls made, the sequential depth of calls, and
 * "round trips paid" = (elapsed − elapsed at RTT 0) / RTT, next to the
 * targets. Run: `deno task bench:latency`.
 *
 * @module
 */

import { generateKey, get, getAsStream, set } from "../mod.ts";
import { LatencyKv } from "../_testing/latency_kv.ts";

const KIB = 1024;
const MIB = 1024 * KIB;
const RTTS_MS = [0, 5, 20] as const;
const SIZES = [64 * KIB, MIB, 16 * MIB, 64 * MIB] as const;
const INLINE_SIZE = KIB;
const REPEATS = 3;

/** Round-trip targets at 20 ms, by operation and size (issue targets). */
const TARGETS: Record<string, Partial<Record<number, number>>> = {
  get: { [INLINE_SIZE]: 1, [16 * MIB]: 3, [64 * MIB]: 5 },
  set: { [INLINE_SIZE]: 2, [16 * MIB]: 6, [64 * MIB]: 12 },
  ttfb: { [INLINE_SIZE]: 2, [64 * KIB]: 2, [MIB]: 2, [16 * MIB]: 2, [64 * MIB]: 2 },
};

interface Measure {
  ms: number;
  calls: number;
  depth: number;
}

type Operation = "set" | "get" | "ttfb";

async function measure(
  latency: LatencyKv,
  run: () => Promise<unknown>,
): Promise<Measure> {
  let best: Measure | undefined;
  for (let i = 0; i < REPEATS; i++) {
    latency.reset();
    const started = performance.now();
    await run();
    const ms = performance.now() - started;
    if (best === undefined || ms < best.ms) {
      best = { ms, calls: latency.calls.length, depth: latency.depth };
    }
  }
  return best!;
}

async function firstByte(kv: Deno.Kv, key: Deno.KvKey, options: object): Promise<void> {
  const reader = (await getAsStream(kv, key, options))!.getReader();
  await reader.read();
  await reader.cancel();
}

async function measureAll(
  raw: Deno.Kv,
  rtt: number,
  size: number,
  encryptionKey: JsonWebKey | undefined,
): Promise<Record<Operation, Measure>> {
  const format = encryptionKey ? "aes" : "plain";
  const latency = new LatencyKv(raw, rtt);
  const options = encryptionKey ? { encryptionKey } : {};
  const value = new Uint8Array(size).fill(7);
  let round = 0;
  // A fresh key per repeat: a set that also deletes a replaced version is another case.
  const setMeasure = await measure(
    latency,
    () => set(latency.kv, ["latency", format, rtt, size, round++], value, options),
  );
  const key = ["latency", format, rtt, size, 0];
  return {
    set: setMeasure,
    get: await measure(latency, () => get(latency.kv, key, options)),
    ttfb: await measure(latency, () => firstByte(latency.kv, key, options)),
  };
}

function sizeLabel(size: number): string {
  return size >= MIB ? `${size / MIB} MiB` : `${size / KIB} KiB`;
}

function verdict(operation: Operation, size: number, rtt: number, paid: number): string {
  const target = TARGETS[operation]?.[size];
  if (target === undefined || rtt !== 20) return "";
  return paid <= target + 0.5 ? ` ≤${target} PASS` : ` ≤${target} MISS`;
}

async function main(): Promise<void> {
  console.log(
    `# deno task bench:latency (Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores)`,
  );
  console.log("# best of 3; paid = (elapsed − elapsed at RTT 0) / RTT; depth = sequential calls\n");
  const raw = await Deno.openKv(":memory:");
  const aesKey = await generateKey({ bits: 256 });
  console.log("| format | size | RTT | op | elapsed ms | calls | depth | paid | target |");
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const [format, key] of [["plain", undefined], ["AES-256", aesKey]] as const) {
    for (const size of [INLINE_SIZE, ...SIZES]) {
      const base = await measureAll(raw, 0, size, key);
      for (const rtt of RTTS_MS) {
        const result = rtt === 0 ? base : await measureAll(raw, rtt, size, key);
        for (const operation of ["set", "get", "ttfb"] as const) {
          const m = result[operation];
          const paid = rtt === 0 ? 0 : (m.ms - base[operation].ms) / rtt;
          console.log(
            `| ${format} | ${sizeLabel(size)} | ${rtt} | ${operation} | ${
              m.ms.toFixed(1)
            } | ${m.calls} | ${m.depth} | ${rtt === 0 ? "-" : paid.toFixed(1)} |${
              verdict(operation, size, rtt, paid)
            } |`,
          );
        }
      }
    }
  }
  raw.close();
}

if (import.meta.main) await main();
