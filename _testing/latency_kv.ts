/**
 * A benchmark-only wrapper around a real `Deno.Kv` that delays every call by
 * a simulated network round trip, counts the calls, and records which calls
 * were in flight together, so a run can report how many *sequential* round
 * trips an operation paid. Not exported by the library.
 *
 * Each `get`, `getMany`, `set`, `delete` and `commit` costs one round trip;
 * a `list` costs one per page fetched, where a page is `batchSize` entries
 * (Deno KV's default 100, capped by `limit`) and a page boundary with no
 * `limit` left costs a fetch even when it comes back empty, as on a remote
 * store.
 *
 * @module
 */

/** One call the wrapper saw. */
export interface CallRecord {
  /** `get`, `getMany`, `set`, `delete`, `commit` or `list-page`. */
  op: string;
  /** Start, ms (performance.now()). */
  start: number;
  /** End, ms. */
  end: number;
  /** 1 + the depth of the deepest call that ended before this one started. */
  depth: number;
}

const DEFAULT_LIST_BATCH = 100;

/** A Deno.Kv whose calls each wait `rttMs` and are recorded. */
export class LatencyKv {
  readonly #inner: Deno.Kv;
  readonly #rttMs: number;
  #calls: CallRecord[] = [];
  #proxy: Deno.Kv | undefined;

  /** Wraps `inner`; every call waits `rttMs` before it runs. */
  constructor(inner: Deno.Kv, rttMs: number) {
    this.#inner = inner;
    this.#rttMs = rttMs;
  }

  /** The calls recorded since the last {@linkcode reset}. */
  get calls(): readonly CallRecord[] {
    return this.#calls;
  }

  /** The longest chain of calls that had to wait for one another. */
  get depth(): number {
    return this.#calls.reduce((max, call) => Math.max(max, call.depth), 0);
  }

  /** Forgets the calls recorded so far. */
  reset(): void {
    this.#calls = [];
  }

  async #call<T>(op: string, run: () => Promise<T>): Promise<T> {
    const start = performance.now();
    const depth = 1 + this.#calls.reduce(
      (max, call) => (call.end <= start ? Math.max(max, call.depth) : max),
      0,
    );
    const record: CallRecord = { op, start, end: Infinity, depth };
    this.#calls.push(record);
    try {
      if (this.#rttMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#rttMs));
      return await run();
    } finally {
      record.end = performance.now();
    }
  }

  #list(selector: Deno.KvListSelector, options: Deno.KvListOptions = {}) {
    const inner = this.#inner.list(selector, options);
    const pageSize = Math.min(options.batchSize ?? DEFAULT_LIST_BATCH, options.limit ?? Infinity);
    let position = 0;
    // deno-lint-ignore no-this-alias
    const self = this;
    const iterator = {
      get cursor() {
        return inner.cursor;
      },
      next() {
        const atPage = position % pageSize === 0 &&
          (options.limit === undefined || position < options.limit);
        position++;
        return atPage ? self.#call("list-page", () => inner.next()) : inner.next();
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  #atomic(): Deno.AtomicOperation {
    const op = this.#inner.atomic();
    const wrapper: Deno.AtomicOperation = new Proxy(op, {
      get: (target, property) => {
        if (property === "commit") return () => this.#call("commit", () => target.commit());
        const value = Reflect.get(target, property, target);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          value.apply(target, args);
          return wrapper;
        };
      },
    });
    return wrapper;
  }

  /** The wrapped store, usable wherever a Deno.Kv is: one object, as a store handle is. */
  get kv(): Deno.Kv {
    this.#proxy ??= this.#wrap();
    return this.#proxy;
  }

  #wrap(): Deno.Kv {
    const inner = this.#inner;
    return new Proxy(inner, {
      get: (target, property) => {
        switch (property) {
          case "get":
          case "getMany":
          case "set":
          case "delete":
            return (...args: unknown[]) =>
              this.#call(
                property,
                // deno-lint-ignore no-explicit-any
                () => (Reflect.get(target, property) as any).apply(target, args),
              );
          case "list":
            return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) =>
              this.#list(selector, options);
          case "atomic":
            return () => this.#atomic();
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }
}
