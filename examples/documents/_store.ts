/**
 * Opens a service's Deno KV store: a local file (its folder created), a KV
 * Connect URL, or, on Deno Deploy with no path set, the project's own KV.
 *
 * @module
 */

/**
 * Opens the store at `path`, or at `fallback` when `path` is unset (on Deno
 * Deploy, where there is no disk, the project's KV instead).
 *
 * @param path The configured path or URL, if any.
 * @param fallback The default file path.
 * @returns The open store.
 */
export async function openStore(path: string | undefined, fallback: string): Promise<Deno.Kv> {
  if (path === undefined && Deno.env.get("DENO_DEPLOYMENT_ID") !== undefined) {
    return await Deno.openKv();
  }
  const target = path ?? fallback;
  if (/^https?:\/\//.test(target) || target === ":memory:") return await Deno.openKv(target);
  const slash = target.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(target.slice(0, slash), { recursive: true });
  return await Deno.openKv(target);
}
