/**
 * Stand-ins for the `@std/assert` functions kv-toolbox's tests use
 * (`assert`, `assertEquals`, `assertNotEquals`, `assertStrictEquals`,
 * `assertThrows`, `assertRejects`), for running them without JSR. Deep
 * equality is `node:util`'s `isDeepStrictEqual`.
 *
 * @module
 */
import { inspect, isDeepStrictEqual } from "node:util";

/** Error thrown by a failed assertion. */
export class AssertionError extends Error {
  /** @param message What failed. */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => Error;

/** Throws unless `expr` is truthy. */
export function assert(expr: unknown, msg = ""): asserts expr {
  if (!expr) throw new AssertionError(msg || "Expected the expression to be truthy");
}

/** Throws unless `actual` and `expected` are deeply equal. */
export function assertEquals<T>(actual: unknown, expected: T, msg?: string): asserts actual is T {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new AssertionError(
      msg ??
        `Values are not equal:\n  actual:   ${inspect(actual)}\n  expected: ${inspect(expected)}`,
    );
  }
}

/** Throws if `actual` and `expected` are deeply equal. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  if (isDeepStrictEqual(actual, expected)) {
    throw new AssertionError(msg ?? `Expected actual to differ from ${inspect(expected)}`);
  }
}

/** Throws unless `actual === expected` (by `Object.is`). */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  if (!Object.is(actual, expected)) {
    throw new AssertionError(
      msg ?? `Values are not strictly equal: ${inspect(actual)} !== ${inspect(expected)}`,
    );
  }
}

function checkError(error: unknown, errorClass?: ErrorClass, includes?: string): void {
  if (errorClass && !(error instanceof errorClass)) {
    throw new AssertionError(`Expected a ${errorClass.name}, got ${inspect(error)}`);
  }
  if (includes !== undefined && !(error instanceof Error && error.message.includes(includes))) {
    throw new AssertionError(
      `Expected the error message to include ${inspect(includes)}, got ${inspect(error)}`,
    );
  }
}

/** Calls `fn`; throws unless it throws (an `errorClass` whose message includes `msgIncludes`). */
export function assertThrows(
  fn: () => unknown,
  errorClassOrMsg?: ErrorClass | string,
  msgIncludes?: string,
  msg?: string,
): unknown {
  const errorClass = typeof errorClassOrMsg === "function" ? errorClassOrMsg : undefined;
  try {
    fn();
  } catch (error) {
    checkError(error, errorClass, errorClass ? msgIncludes : undefined);
    return error;
  }
  const message = errorClass ? msg : errorClassOrMsg as string | undefined;
  throw new AssertionError(message ?? "Expected the function to throw");
}

/** Awaits `fn()`; throws unless it rejects (with an `errorClass` whose message includes `msgIncludes`). */
export async function assertRejects(
  fn: () => PromiseLike<unknown>,
  errorClassOrMsg?: ErrorClass | string,
  msgIncludes?: string,
  msg?: string,
): Promise<unknown> {
  const errorClass = typeof errorClassOrMsg === "function" ? errorClassOrMsg : undefined;
  try {
    await fn();
  } catch (error) {
    checkError(error, errorClass, errorClass ? msgIncludes : undefined);
    return error;
  }
  const message = errorClass ? msg : errorClassOrMsg as string | undefined;
  throw new AssertionError(message ?? "Expected the function to reject");
}
