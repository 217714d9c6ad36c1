/**
 * User names: what the app, the key service and the CLI accept.
 *
 * @module
 */

/** Lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit, 1–32 characters. */
const USER_NAME = /^[a-z0-9][a-z0-9._-]{0,31}$/;

/**
 * Whether `name` is a valid user name (it is also the user's key id, so it
 * must fit a kvcrypt kid and never hold a path separator).
 *
 * @param name The candidate.
 * @returns True when valid.
 */
export function isUserName(name: unknown): name is string {
  return typeof name === "string" && USER_NAME.test(name);
}

/** The rule, for error messages. */
export const USER_NAME_RULE =
  "1-32 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit";
