/**
 * Test-only fault injection for Deno KV: wraps a real `Deno.Kv` so a test can
 * make the Nth write fail, either before it reaches the store or after it was
 * applied (a lost reply), or simulate a crash (every later write fails too).
 * Reads (`get`, `getMany`, `list`, `watch`) pass through untouched.
 *
 * A write is one `atomic().commit()`, `kv.set`, `kv.delete` or `kv.enqueue`;
 * writes are numbered from 1 in the order they are issued.
 *
 * @example Count the writes of a clean run, then fail the last one
 * ```ts ignore
 * const writes = await countWrites(kv, (wrapped) => set(wrapped, ["k"], bytes));
 * const faulty = faultyKv(kv, { failAt: writes, mode: "before" });
 * await set(faulty.kv, ["k"], bytes); // rejects with InjectedFault
 * ```
 *
 * @module
 */

/**
 * `"before"`: the write throws without being applied. `"after"`: the write is
 * applied, then throws (the store changed but the caller never heard).
 */
export type FaultMode = "before" | "after";

/** The kind of a write as the wrapper saw it. */
export type WriteKind = "commit" | "set" | "delete" | "enqueue";

/** One write issued through the wrapper. */
export interface WriteRecord {
  /** 1-based position among all writes issued through this wrapper. */
  n: number;
  /** What was called. */
  kind: WriteKind;
  /** Keys the write mutates (sets, deletes, sums, …), in call order. */
  keys: Deno.KvKey[];
  /** The same mutations with their type ("set", "delete", "sum", …). */
  mutations: { type: string; key: Deno.KvKey }[];
  /** Keys an atomic checks. */
  checks: Deno.KvKey[];
  /** How it ended: applied, failed by injection (and whether applied), or a real error. */
  outcome?: "ok" | "check-failed" | "injected-before" | "injected-after" | "error";
}

/** When and how writes fail. */
export interface FaultPlan {
  /** 1-based number of the write that fails; undefined: none fails. */
  failAt?: number | undefined;
  /** How the write `failAt` fails. Default `"before"`. */
  mode?: FaultMode | undefined;
  /**
   * A crash: every write after `failAt` fails too, before reaching the store
   * (reads keep working, standing in for whatever reads a dying process does).
   */
  crash?: boolean | undefined;
  /**
   * Awaited before write `n` reaches the store (and before any injected
   * failure): lets a test interleave something, e.g. a `vacuum`, at an exact
   * point of a protocol.
   */
  beforeWrite?: ((n: number, write: WriteRecord) => void | Promise<void>) | undefined;
}

/** The error an injected failure throws. */
export class InjectedFault extends Error {
  /**
   * @param write Number of the write that failed.
   * @param mode Whether it had been applied ("after") or not ("before").
   */
  constructor(readonly write: number, readonly mode: FaultMode) {
    super(`injected fault at write ${write} (${mode})`);
    this.name = "InjectedFault";
  }
}

/** A wrapped store and what went through it. */
export interface FaultyKv {
  /** Use this instead of the real store. Type-compatible with `Deno.Kv`. */
  readonly kv: Deno.Kv;
  /** The plan; may be changed between operations. */
  plan: FaultPlan;
  /** Writes issued so far. */
  readonly writes: number;
  /** Every write issued so far, in order. */
  readonly log: readonly WriteRecord[];
  /** Failures injected so far. */
  readonly injected: readonly InjectedFault[];
}

class Recorder {
  writes = 0;
  readonly log: WriteRecord[] = [];
  readonly injected: InjectedFault[] = [];
  constructor(public plan: FaultPlan) {}

  /** Numbers a write now (call order), then applies or fails it per the plan. */
  async perform<T>(
    kind: WriteKind,
    mutations: { type: string; key: Deno.KvKey }[],
    checks: Deno.KvKey[],
    apply: () => Promise<T>,
  ): Promise<T> {
    const n = ++this.writes;
    const keys = mutations.map((mutation) => mutation.key);
    const record: WriteRecord = { n, kind, keys, mutations, checks };
    this.log.push(record);
    const { failAt, mode = "before", crash = false, beforeWrite } = this.plan;
    if (beforeWrite !== undefined) await beforeWrite(n, record);
    const failing = failAt !== undefined && (n === failAt || (crash && n > failAt));
    if (!failing) {
      try {
        const result = await apply();
        record.outcome = (result as { ok?: boolean } | undefined)?.ok === false
          ? "check-failed"
          : "ok";
        return result;
      } catch (error) {
        record.outcome = "error";
        throw error;
      }
    }
    if (n === failAt && mode === "after") {
      // A real error while applying is not swallowed: the test should see it.
      await apply();
      record.outcome = "injected-after";
    } else {
      record.outcome = "injected-before";
    }
    const fault = new InjectedFault(n, n === failAt ? mode : "before");
    this.injected.push(fault);
    throw fault;
  }
}

/** Forwards everything to a real atomic operation and intercepts `commit`. */
class FaultyAtomic {
  readonly #op: Deno.AtomicOperation;
  readonly #recorder: Recorder;
  readonly #mutations: { type: string; key: Deno.KvKey }[] = [];
  readonly #checks: Deno.KvKey[] = [];

  constructor(op: Deno.AtomicOperation, recorder: Recorder) {
    this.#op = op;
    this.#recorder = recorder;
  }

  check(...checks: Deno.AtomicCheck[]): this {
    for (const check of checks) this.#checks.push(check.key);
    this.#op.check(...checks);
    return this;
  }

  mutate(...mutations: Deno.KvMutation[]): this {
    for (const { type, key } of mutations) this.#mutations.push({ type, key });
    this.#op.mutate(...mutations);
    return this;
  }

  sum(key: Deno.KvKey, n: bigint): this {
    this.#mutations.push({ type: "sum", key });
    this.#op.sum(key, n);
    return this;
  }

  min(key: Deno.KvKey, n: bigint): this {
    this.#mutations.push({ type: "min", key });
    this.#op.min(key, n);
    return this;
  }

  max(key: Deno.KvKey, n: bigint): this {
    this.#mutations.push({ type: "max", key });
    this.#op.max(key, n);
    return this;
  }

  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this {
    this.#mutations.push({ type: "set", key });
    this.#op.set(key, value, options);
    return this;
  }

  delete(key: Deno.KvKey): this {
    this.#mutations.push({ type: "delete", key });
    this.#op.delete(key);
    return this;
  }

  enqueue(value: unknown, options?: Parameters<Deno.AtomicOperation["enqueue"]>[1]): this {
    this.#op.enqueue(value, options);
    return this;
  }

  commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    return this.#recorder.perform("commit", this.#mutations, this.#checks, () => this.#op.commit());
  }
}

/**
 * Wraps a real store. The returned `kv` is a Proxy: `atomic()` returns a
 * forwarding operation whose `commit` is counted and may fail; `set`,
 * `delete` and `enqueue` are counted and may fail; everything else (reads,
 * `watch`, `close`) goes straight to the real store.
 *
 * @param kv The real store (it stays usable directly, e.g. to inspect it).
 * @param plan Which write fails and how; none by default.
 */
export function faultyKv(kv: Deno.Kv, plan: FaultPlan = {}): FaultyKv {
  const recorder = new Recorder(plan);
  const wrapped = new Proxy(kv, {
    get(target, property) {
      switch (property) {
        case "atomic":
          return () =>
            new FaultyAtomic(target.atomic(), recorder) as unknown as Deno.AtomicOperation;
        case "set":
          return (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) =>
            recorder.perform(
              "set",
              [{ type: "set", key }],
              [],
              () => target.set(key, value, options),
            );
        case "delete":
          return (key: Deno.KvKey) =>
            recorder.perform("delete", [{ type: "delete", key }], [], () => target.delete(key));
        case "enqueue":
          return (value: unknown, options?: Parameters<Deno.Kv["enqueue"]>[1]) =>
            recorder.perform("enqueue", [], [], () => target.enqueue(value, options));
      }
      const value = Reflect.get(target, property, target);
      // Deno.Kv's methods use private state: call them on the real object.
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    kv: wrapped,
    get plan() {
      return recorder.plan;
    },
    set plan(next: FaultPlan) {
      recorder.plan = next;
    },
    get writes() {
      return recorder.writes;
    },
    log: recorder.log,
    injected: recorder.injected,
  };
}

/**
 * Runs `run` against a wrapper without faults and returns the writes it
 * issued, so a test knows the range of N for the same run on the same state.
 * The run does change `kv`: use a store prepared the same way as the one
 * under test.
 *
 * @param kv The real store.
 * @param run The operation, given the wrapped store.
 * @returns The writes issued, with their keys.
 */
export async function countWrites(
  kv: Deno.Kv,
  run: (kv: Deno.Kv) => Promise<unknown>,
): Promise<WriteRecord[]> {
  const faulty = faultyKv(kv);
  await run(faulty.kv);
  return [...faulty.log];
}
