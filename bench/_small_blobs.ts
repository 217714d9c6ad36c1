/**
 * Small and medium blobs side by side (`deno task bench:scaling` runs it as a
 * child process): `set` and `get` of a Uint8Array of 64 KiB, 1 MiB and
 * 16 MiB on a file-backed KV, in one run, for
 *
 * - raw KV: the same bytes as 12-chunk atomics, committed one at a time and
 *   {@linkcode WRITE_ATOMICS_IN_FLIGHT} in flight (the faster median counts),
 *   read back into one buffer with one `kv.list`, no library
 *   (bench/_scaling_raw_kv.ts); and the two-call floor of any blob store
 *   whose record names its chunks ("raw+rec"): a record `get` before the
 *   write or the `list`;
 * - the floor of an encrypted blob in kvcrypt's format ("raw+KVC1",
 *   bench/_raw_kvc1.ts): the Web Crypto calls of a KVC1 write and read
 *   around the raw+rec calls, committing the record and version entry as
 *   kvcrypt does, no library;
 * - kvcrypt, plain and AES-256;
 * - kv-toolbox 0.30, plain and AES-256, when a snapshot is given with
 *   `--toolbox SRC` (its sources, loaded through the import map
 *   bench/_kv_toolbox.ts writes; run with `--no-config --import-map`).
 *
 * Every repetition opens a fresh SQLite file per contender, the contenders
 * take turns in a rotating order, and the medians are compared as ratios
 * within the run; every read is checked. A full garbage collection runs
 * before each turn (with `--expose-gc`), not before each timed op: right
 * after a full collection the heap's pages are cold, and every contender's
 * first allocations then cost page faults (here 10–20 µs for the first typed
 * array, string or JSON parse), a state a process serving requests is not in
 * before each request; measured, it made every contender's 64 KiB get twice
 * as slow and hid the overlap of calls issued together. "get again" reads the same blob a
 * second time (kvcrypt's cache of opened versions then skips the unwrap and
 * the HKDF).
 *
 * @module
 */

import { get, set } from "../blob.ts";
import { generateKey } from "../keys.ts";
import { WRITE_ATOMICS_IN_FLIGHT } from "../_limits.ts";
import { rawId, rawReadIntoBuffer, rawWrite } from "./_scaling_raw_kv.ts";
import { rawKvc1 } from "./_raw_kvc1.ts";
import { LatencyKv } from "../_testing/latency_kv.ts";

const KIB = 1024;
const MIB = 1024 * KIB;
/** Sizes measured, and repetitions of each (more for small ones, where one op is a millisecond). */
const SIZES: readonly { size: number; reps: number }[] = [
  { size: 64 * KIB, reps: 150 },
  { size: MIB, reps: 30 },
  { size: 16 * MIB, reps: 9 },
];
/** Width of a table column. */
const COLUMN = 11;

/** What kv-toolbox 0.30's blob and crypto modules offer that this bench uses. */
interface KvToolbox {
  set(kv: Deno.Kv, key: Deno.KvKey, value: Uint8Array): Promise<unknown>;
  get(kv: Deno.Kv, key: Deno.KvKey): Promise<{ value: Uint8Array | null }>;
  CryptoKv: new (kv: Deno.Kv, key: string) => {
    setBlob(key: Deno.KvKey, value: Uint8Array): Promise<unknown>;
    getBlob(key: Deno.KvKey): Promise<{ value: Uint8Array | null }>;
  };
  generateKey(bits: 256): string;
}

/** One contender: writes the value into a fresh store, then reads it back. */
interface Contender {
  name: string;
  /** Prepares a fresh store; returns the write and the read to time. */
  open(kv: Deno.Kv): { write(value: Uint8Array): Promise<unknown>; read(): Promise<Uint8Array> };
}

const RECORD_KEY: Deno.KvKey = ["bench", "blob"];

function rawContender(name: string, withRecord: boolean, inFlight: number): Contender {
  return {
    name,
    open(kv) {
      const id = rawId();
      let size = 0;
      return {
        async write(value) {
          if (withRecord) await kv.get(RECORD_KEY);
          size = value.length;
          await rawWrite(kv, id, ReadableStream.from([value]), inFlight);
        },
        async read() {
          if (withRecord) await kv.get(RECORD_KEY);
          return await rawReadIntoBuffer(kv, id, size);
        },
      };
    },
  };
}

async function contenders(toolbox: KvToolbox | undefined): Promise<Contender[]> {
  const encryptionKey = await generateKey();
  const kek = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
  const list: Contender[] = [
    rawContender("raw w1", false, 1),
    rawContender("raw wN", false, WRITE_ATOMICS_IN_FLIGHT),
    rawContender("raw+rec", true, WRITE_ATOMICS_IN_FLIGHT),
    { name: "raw+KVC1", open: (kv) => rawKvc1(kv, RECORD_KEY, kek) },
    {
      name: "kvc plain",
      open: (kv) => ({
        write: (value) => set(kv, RECORD_KEY, value),
        read: async () => (await get(kv, RECORD_KEY)).value!,
      }),
    },
    {
      name: "kvc AES",
      open: (kv) => ({
        write: (value) => set(kv, RECORD_KEY, value, { encryptionKey }),
        read: async () => (await get(kv, RECORD_KEY, { encryptionKey })).value!,
      }),
    },
  ];
  if (toolbox === undefined) return list;
  const toolboxKey = toolbox.generateKey(256);
  list.push(
    {
      name: "kvtb plain",
      open: (kv) => ({
        write: (value) => toolbox.set(kv, RECORD_KEY, value),
        read: async () => (await toolbox.get(kv, RECORD_KEY)).value!,
      }),
    },
    {
      name: "kvtb AES",
      open: (kv) => {
        const cryptoKv = new toolbox.CryptoKv(kv, toolboxKey);
        return {
          write: (value) => cryptoKv.setBlob(RECORD_KEY, value),
          read: async () => (await cryptoKv.getBlob(RECORD_KEY)).value!,
        };
      },
    },
  );
  return list;
}

async function loadToolbox(dir: string | undefined): Promise<KvToolbox | undefined> {
  if (dir === undefined) return undefined;
  const base = new URL(`file://${dir.endsWith("/") ? dir : `${dir}/`}`);
  const blob = await import(new URL("blob.ts", base).href);
  const crypto = await import(new URL("crypto.ts", base).href);
  return {
    set: blob.set,
    get: blob.get,
    CryptoKv: crypto.CryptoKv,
    generateKey: crypto.generateKey,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index]);
}

/** Median set and get times (ms) of every contender at one size. */
async function measureSize(
  root: string,
  size: number,
  reps: number,
  all: Contender[],
): Promise<Map<string, Times>> {
  const value = new Uint8Array(size);
  for (let at = 0; at < size; at += 65_536) crypto.getRandomValues(value.subarray(at, at + 65_536));
  const times = new Map(
    all.map((c) => [c.name, { set: [] as number[], get: [] as number[], again: [] as number[] }]),
  );
  for (let rep = -1; rep < reps; rep++) {
    for (let turn = 0; turn < all.length; turn++) {
      const contender = all[(turn + Math.max(rep, 0)) % all.length]!;
      const path = `${root}/${contender.name.replace(/\W/g, "_")}-${size}-${rep}.sqlite`;
      // Between turns, not before each timed op: see the module doc.
      (globalThis as { gc?: () => void }).gc?.();
      const kv = await Deno.openKv(path);
      try {
        const ops = contender.open(kv);
        const setMs = await timed(() => ops.write(value));
        let read: Uint8Array | undefined;
        const getMs = await timed(async () => read = await ops.read());
        if (!sameBytes(read!, value)) throw new Error(`${contender.name} read other bytes`);
        const againMs = await timed(async () => read = await ops.read());
        if (!sameBytes(read!, value)) throw new Error(`${contender.name} read other bytes`);
        if (rep < 0) continue; // a warm-up round: JIT, key imports
        const own = times.get(contender.name)!;
        own.set.push(setMs);
        own.get.push(getMs);
        own.again.push(againMs);
      } finally {
        kv.close();
        await Deno.remove(path).catch(() => {});
      }
    }
  }
  const medians = new Map<string, Times>();
  for (const [name, t] of times) {
    medians.set(name, { set: median(t.set), get: median(t.get), again: median(t.again) });
  }
  // The raw floor: the faster of one atomic at a time and the library's concurrency.
  const [w1, wN] = [medians.get("raw w1")!, medians.get("raw wN")!];
  medians.set("raw", {
    set: Math.min(w1.set, wN.set),
    get: Math.min(w1.get, wN.get),
    again: Math.min(w1.again, wN.again),
  });
  return medians;
}

/** Median ms per op of one contender at one size. */
interface Times {
  set: number;
  get: number;
  again: number;
}

const OPS = ["set", "get", "again"] as const;
const OP_NAMES: Record<(typeof OPS)[number], string> = {
  set: "set",
  get: "get",
  again: "get again",
};

function label(size: number): string {
  return size >= MIB ? `${size / MIB} MiB` : `${size / KIB} KiB`;
}

function cell(text: string | number, width = COLUMN): string {
  return String(text).padStart(width);
}

/**
 * Prints a PASS/MISS line for a target `ratio <= most`, next to the two-call
 * floor's own ratio (and the sequential one) when given; returns whether the
 * target is met.
 */
function target(
  what: string,
  ratio: number,
  most: number,
  floor?: number,
  sequential?: number,
): boolean {
  const ok = ratio <= most;
  const floorText = (floor === undefined ? "" : `floor ${floor.toFixed(2)}, `) +
    (sequential === undefined ? "" : `sequential ${sequential.toFixed(2)}, `);
  const verdict = ok ? "PASS" : "MISS";
  console.log(
    `  ${what.padEnd(40)} ${ratio.toFixed(2)}  (${floorText}target <= ${most})  ${verdict}`,
  );
  return ok;
}

function printTables(results: Map<number, Map<string, Times>>, all: Contender[]): void {
  const names = ["raw", ...all.map((c) => c.name).filter((name) => !name.startsWith("raw "))];
  console.log(["size", "op", ...names].map((t) => cell(t)).join(""));
  for (const [size, byName] of results) {
    for (const op of OPS) {
      const row = names.map((name) => cell(byName.get(name)![op].toFixed(2)));
      console.log([cell(label(size)), cell(OP_NAMES[op]), ...row].join(""));
    }
  }
  console.log("\nRatios to raw KV (time / raw time):");
  const others = names.slice(1);
  console.log(["size", "op", ...others].map((t) => cell(t)).join(""));
  for (const [size, byName] of results) {
    for (const op of OPS) {
      const raw = byName.get("raw")![op];
      const ratios = others.map((name) => cell((byName.get(name)![op] / raw).toFixed(2)));
      console.log([cell(label(size)), cell(OP_NAMES[op]), ...ratios].join(""));
    }
  }
}

function printTargets(results: Map<number, Map<string, Times>>, toolbox: boolean): boolean[] {
  const ratio = (size: number, name: string, op: keyof Times, base = "raw") =>
    results.get(size)!.get(name)![op] / results.get(size)!.get(base)![op];
  const both = (name: string) => {
    const t = results.get(64 * KIB)!.get(name)!;
    return t.set + t.get;
  };
  console.log(
    "\nTargets (ratios of medians; floor: raw+rec / raw, the two-call floor; " +
      "sequential: raw w1 / raw, atomics one after another as a record committed after its chunks must be):",
  );
  const floor = (size: number, op: keyof Times) => ratio(size, "raw+rec", op);
  const sequential = (size: number) => ratio(size, "raw w1", "set");
  const k64 = 64 * KIB;
  const oks = [
    target("64 KiB plain set / raw write", ratio(k64, "kvc plain", "set"), 1.35, floor(k64, "set")),
    target("64 KiB plain get / raw read", ratio(k64, "kvc plain", "get"), 1.25, floor(k64, "get")),
    target("64 KiB AES-256 set / raw write", ratio(k64, "kvc AES", "set"), 1.9, floor(k64, "set")),
    target("64 KiB AES-256 get / raw read", ratio(k64, "kvc AES", "get"), 3.5, floor(k64, "get")),
    target(
      "1 MiB plain set / raw write",
      ratio(MIB, "kvc plain", "set"),
      1.05,
      floor(MIB, "set"),
      sequential(MIB),
    ),
    target(
      "16 MiB plain set / raw write",
      ratio(16 * MIB, "kvc plain", "set"),
      1.05,
      floor(16 * MIB, "set"),
      sequential(16 * MIB),
    ),
    target(
      "64 KiB AES-256 set+get / plain set+get",
      both("kvc AES") / both("kvc plain"),
      1.3,
      both("raw+KVC1") / both("raw+rec"),
    ),
  ];
  const k64Times = results.get(k64)!;
  const aes = (name: string, op: keyof Times) => k64Times.get(name)![op];
  console.log(
    `  (info) 64 KiB AES-256 kvcrypt / its format floor raw+KVC1: set ${
      (aes("kvc AES", "set") / aes("raw+KVC1", "set")).toFixed(2)
    }, get ${(aes("kvc AES", "get") / aes("raw+KVC1", "get")).toFixed(2)}`,
  );
  if (!toolbox) return oks;
  console.log(
    `  (info) 64 KiB AES-256 format floor raw+KVC1 / kv-toolbox AES-256: set ${
      (aes("raw+KVC1", "set") / aes("kvtb AES", "set")).toFixed(2)
    }, get ${(aes("raw+KVC1", "get") / aes("kvtb AES", "get")).toFixed(2)}`,
  );
  console.log(
    "\nkvcrypt speed / kv-toolbox speed (kv-toolbox time / kvcrypt time; >= 1: not slower):",
  );
  for (const [size] of results) {
    for (const op of OPS) {
      const plain = 1 / ratio(size, "kvc plain", op, "kvtb plain");
      const aes = 1 / ratio(size, "kvc AES", op, "kvtb AES");
      const ok = plain >= 1 && aes >= 1;
      oks.push(ok);
      console.log(
        `  ${label(size).padEnd(7)} ${OP_NAMES[op].padEnd(9)}  plain ${plain.toFixed(2)}  ` +
          `AES-256 ${aes.toFixed(2)}  ${ok ? "PASS" : "MISS"}`,
      );
    }
  }
  return oks;
}

/** Simulated round trip for the call-depth table: long enough that calls issued together overlap. */
const DEPTH_RTT_MS = 5;
/** Sizes of the call-depth table. */
const DEPTH_SIZES = [64 * KIB, MIB];

/**
 * Sequential calls (the depth a remote KV pays in round trips) of each
 * library contender's set, get, get again, and a get through a second store
 * handle that never saw the blob; raw contenders are left out.
 */
async function printDepths(all: Contender[]): Promise<void> {
  const libraries = all.filter((c) => !c.name.startsWith("raw"));
  const opNames = ["set", "get", "get again", "new handle"];
  console.log(
    `\nSequential KV calls per op (simulated ${DEPTH_RTT_MS} ms round trip; a remote KV pays one round trip each):`,
  );
  console.log(
    "size".padStart(COLUMN) + "op".padStart(COLUMN) +
      libraries.map((c) => c.name.padStart(COLUMN)).join(""),
  );
  const rows = new Map<string, string>();
  for (const size of DEPTH_SIZES) {
    const value = new Uint8Array(size).fill(7);
    for (const contender of libraries) {
      const raw = await Deno.openKv(":memory:");
      try {
        const latency = new LatencyKv(raw, DEPTH_RTT_MS);
        const ops = contender.open(latency.kv);
        const depths: number[] = [];
        for (const work of [() => ops.write(value), () => ops.read(), () => ops.read()]) {
          latency.reset();
          await work();
          depths.push(latency.depth);
        }
        const other = new LatencyKv(raw, DEPTH_RTT_MS);
        await contender.open(other.kv).read();
        depths.push(other.depth);
        for (const [i, depth] of depths.entries()) {
          const row = `${label(size).padStart(COLUMN)}${opNames[i]!.padStart(COLUMN)}`;
          rows.set(row, (rows.get(row) ?? "") + String(depth).padStart(COLUMN));
        }
      } finally {
        raw.close();
      }
    }
  }
  for (const [row, cells] of rows) console.log(row + cells);
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--toolbox");
  const toolbox = await loadToolbox(at >= 0 ? Deno.args[at + 1] : undefined);
  const all = await contenders(toolbox);
  const root = await Deno.makeTempDir({ prefix: "kvcrypt-small-" });
  const results = new Map<number, Map<string, Times>>();
  try {
    for (const { size, reps } of SIZES) {
      results.set(size, await measureSize(root, size, reps, all));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  console.log(
    `Medians in ms per op, fresh file-backed KV per repetition (reps: ${
      SIZES.map((s) => `${label(s.size)} ${s.reps}`).join(", ")
    }); kv-toolbox ${toolbox ? "0.30" : "not given (set KV_TOOLBOX_DIR)"}`,
  );
  printTables(results, all);
  const oks = printTargets(results, toolbox !== undefined);
  const met = oks.filter(Boolean).length;
  await printDepths(all);
  console.log(`SMALL-BLOB TARGETS ${met}/${oks.length}`);
}
