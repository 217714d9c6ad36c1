/**
 * A kvcrypt `KeyWrapper` for one user's key in the key service: the app
 * never holds the key, it asks the service to wrap and unwrap each blob's
 * secret, with kvcrypt's context bound as AAD.
 *
 * @module
 */

import type { KeyWrapper } from "../../mod.ts";
import { fromBase64, toBase64 } from "./_base64.ts";

/** How long one call to the key service may take before it counts as down. */
const CALL_TIMEOUT_MS = 10_000;

/** The key service could not be reached, or answered with a server error: retry later. */
export class KeyServiceUnavailableError extends Error {
  /**
   * @param message What failed.
   * @param options The cause.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyServiceUnavailableError";
  }
}

/** Where the key service is and the token it wants. */
export interface KeyServiceConfig {
  /** Its base URL, such as `http://127.0.0.1:8001/`. */
  url: string;
  /** The service token. */
  token: string;
}

/** Makes the wrapper of each user, one object per user (kvcrypt matches stanzas by kid). */
export class KeyService {
  #config: KeyServiceConfig;
  #wrappers = new Map<string, UserKeyWrapper>();

  /** @param config Where the key service is. */
  constructor(config: KeyServiceConfig) {
    this.#config = config;
  }

  /**
   * The wrapper of `user`'s key.
   *
   * @param user A valid user name.
   * @returns Its wrapper (kid = the user name).
   */
  wrapperOf(user: string): UserKeyWrapper {
    let wrapper = this.#wrappers.get(user);
    if (wrapper === undefined) {
      wrapper = new UserKeyWrapper(this.#config, user);
      this.#wrappers.set(user, wrapper);
    }
    return wrapper;
  }

  /**
   * Whether the service answers its health check.
   *
   * @returns True when it is up.
   */
  async isUp(): Promise<boolean> {
    try {
      const response = await fetch(new URL("health", this.#config.url), {
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
      await response.body?.cancel();
      return response.ok;
    } catch {
      return false;
    }
  }
}

/** One user's key in the key service, as a kvcrypt recipient. */
export class UserKeyWrapper implements KeyWrapper {
  /** The kid written in the stanza: the user name. */
  readonly kid: string;
  #config: KeyServiceConfig;

  /**
   * @param config Where the key service is.
   * @param user The user (and kid).
   */
  constructor(config: KeyServiceConfig, user: string) {
    this.#config = config;
    this.kid = user;
  }

  /**
   * Wraps a blob secret under the user's key, bound to `context`.
   *
   * @param secret The 32-byte secret.
   * @param context kvcrypt's context (AAD).
   * @returns The wrapped secret.
   * @throws {KeyServiceUnavailableError} when the service is down.
   */
  async wrap(secret: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    const body = { secret: toBase64(secret), context: toBase64(context) };
    return fromBase64(await this.#call("wrap", body, "wrapped"));
  }

  /**
   * Unwraps a blob secret.
   *
   * @param wrapped What {@linkcode wrap} returned.
   * @param context The same context.
   * @returns The secret.
   * @throws {KeyServiceUnavailableError} when the service is down.
   * @throws {Error} when the service refuses (altered secret or context, no key).
   */
  async unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    const body = { wrapped: toBase64(wrapped), context: toBase64(context) };
    return fromBase64(await this.#call("unwrap", body, "secret"));
  }

  async #call(operation: string, body: unknown, field: string): Promise<string> {
    const url = new URL(`v1/keys/${this.kid}/${operation}`, this.#config.url);
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: {
          "authorization": `Bearer ${this.#config.token}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
    } catch (error) {
      throw new KeyServiceUnavailableError(
        `Cannot ${operation} with the key service: it is unreachable`,
        { cause: error },
      );
    }
    const answer = await response.json().catch(() => ({})) as Record<string, unknown>;
    const value = answer[field];
    if (response.ok && typeof value === "string") return value;
    const reason = typeof answer.error === "string" ? answer.error : `HTTP ${response.status}`;
    // 5xx and a refused service token are the operator's to fix, not the user's.
    if (response.status >= 500 || response.status === 401) {
      throw new KeyServiceUnavailableError(`Cannot ${operation} with the key service: ${reason}`);
    }
    throw new Error(`Cannot ${operation} with the key service: ${reason}`);
  }
}
