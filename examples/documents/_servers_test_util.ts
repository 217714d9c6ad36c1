/**
 * Test helper: starts the key service and the documents app as real child
 * processes on 127.0.0.1 on free ports, each with its own KV file in a temp
 * folder, and adds users through `users.ts`.
 *
 * @module
 */

import { waitForListening } from "./_process.ts";

const HERE = new URL(".", import.meta.url);
/** How long a server may take to start on a loaded machine. */
const START_MS = 30_000;

/** A running server child. */
export interface ServerProcess {
  /** Its base URL. */
  url: string;
  /** The child. */
  process: Deno.ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output: () => string;
}

async function startServer(
  script: string,
  env: Record<string, string>,
  flags: string[] = [],
): Promise<ServerProcess> {
  const label = script === "main.ts" ? "documents" : "key service";
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "--allow-all", ...flags, new URL(script, HERE).href],
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  (async () => {
    for await (const text of process.stderr.pipeThrough(new TextDecoderStream())) log += text;
  })();
  try {
    const url = await waitForListening(process.stdout, START_MS, (text) => (log += text), label);
    return { url, process, output: () => log };
  } catch (error) {
    process.kill("SIGKILL");
    await process.status;
    throw new Error(`${script}: ${(error as Error).message}\n${log}`);
  }
}

async function stopServer(server: ServerProcess): Promise<void> {
  try {
    server.process.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  await server.process.status;
  await server.process.stdin.close().catch(() => {});
}

/** Options of {@linkcode startServers}. */
export interface ServersOptions {
  /** `MAX_UPLOAD_BYTES` of the app. */
  maxUploadBytes?: number;
  /** V8 flags of the app process (`--v8-flags=…`). */
  v8Flags?: string;
}

/** The two servers of one test, their files, and helpers. */
export class Servers {
  /** The temp folder holding both KV files. */
  readonly dir: string;
  /** The app's KV file. */
  readonly appDb: string;
  /** The key service's KV file. */
  readonly keysDb: string;
  /** The key service token. */
  readonly keyToken: string;
  /** The key service. */
  keys!: ServerProcess;
  /** The app. */
  app!: ServerProcess;
  #keyPort = 0;

  private constructor(dir: string) {
    this.dir = dir;
    this.appDb = `${dir}/documents.sqlite3`;
    this.keysDb = `${dir}/keys.sqlite3`;
    this.keyToken = `test-token-${crypto.randomUUID()}`;
  }

  /**
   * Starts both servers.
   *
   * @param options The app's upload limit.
   * @returns The running servers.
   */
  static async start(options: ServersOptions = {}): Promise<Servers> {
    const servers = new Servers(await Deno.makeTempDir({ prefix: "documents_test_" }));
    await servers.startKeys();
    servers.app = await startServer("main.ts", {
      HOST: "127.0.0.1",
      PORT: "0",
      DOCUMENTS_DB: servers.appDb,
      KEY_SERVICE_URL: servers.keys.url,
      KEY_SERVICE_TOKEN: servers.keyToken,
      ...(options.maxUploadBytes === undefined
        ? {}
        : { MAX_UPLOAD_BYTES: String(options.maxUploadBytes) }),
    }, options.v8Flags === undefined ? [] : [`--v8-flags=${options.v8Flags}`]);
    return servers;
  }

  /** The app's base URL. */
  get url(): string {
    return this.app.url;
  }

  /** Starts (or restarts, on the same port) the key service. */
  async startKeys(): Promise<void> {
    this.keys = await startServer("key_service.ts", {
      HOST: "127.0.0.1",
      PORT: String(this.#keyPort),
      KEY_SERVICE_TOKEN: this.keyToken,
      KEY_SERVICE_DB: this.keysDb,
    });
    this.#keyPort = Number(new URL(this.keys.url).port);
  }

  /** Stops the key service (the app keeps running). */
  async stopKeys(): Promise<void> {
    await stopServer(this.keys);
  }

  /** Stops the app. */
  async stopApp(): Promise<void> {
    await stopServer(this.app);
  }

  /**
   * Adds a user with `deno task users add NAME` against the app's KV file.
   *
   * @param name The user.
   * @returns Its API token (the last line of stdout).
   */
  async addUser(name: string): Promise<string> {
    for (let attempt = 1;; attempt++) {
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--unstable-kv", "--allow-all", new URL("users.ts", HERE).href, "add", name],
        env: { DOCUMENTS_DB: this.appDb },
      }).output();
      if (code === 0) return new TextDecoder().decode(stdout).trimEnd().split("\n").at(-1)!;
      const error = new TextDecoder().decode(stderr);
      // SQLite refuses a second writer process while the app writes: retry.
      if (!error.includes("database is locked") || attempt === 5) {
        throw new Error(`users add ${name}: ${error}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }

  /** Peak resident set (VmHWM) of the app process, in bytes. */
  async appPeakRss(): Promise<number> {
    // Through `cat`: Deno grants reading /proc/<pid> only with --allow-all.
    const { stdout } = await new Deno.Command("cat", {
      args: [`/proc/${this.app.process.pid}/status`],
    }).output();
    const status = new TextDecoder().decode(stdout);
    const match = /VmHWM:\s+(\d+) kB/.exec(status);
    if (match === null) throw new Error("Cannot read VmHWM of the app");
    return Number(match[1]) * 1024;
  }

  /** Stops both servers and deletes their files. */
  async stop(): Promise<void> {
    await stopServer(this.app);
    await stopServer(this.keys);
    await Deno.remove(this.dir, { recursive: true });
  }
}

/**
 * Fetch with a bearer token.
 *
 * @param token The API token.
 * @param url The URL.
 * @param init The rest of the request.
 * @returns The response.
 */
export function authed(
  token: string,
  url: string | URL,
  init: RequestInit = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(url, { ...init, headers });
}
