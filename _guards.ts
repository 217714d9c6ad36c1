/**
 * Small type guards shared by the modules that parse caller input.
 *
 * @module
 */

/** Whether a value is a non-null, non-array object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
