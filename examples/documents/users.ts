/**
 * Manages the documents app's users.
 *
 * ```sh
 * deno task users add alice   # creates alice; her API token alone on the last line
 * deno task users list        # the user names
 * ```
 *
 * Uses the same `DOCUMENTS_DB` as the app (default `data/documents.sqlite3`).
 * Only a SHA-256 hash of the token is stored: keep the printed token, it is
 * not shown again.
 *
 * @module
 */

import { addUser, listUsers } from "./_auth.ts";
import { openStore } from "./_store.ts";
import { DEFAULT_DOCUMENTS_DB } from "./main.ts";

const USAGE = "usage: deno task users add NAME | deno task users list";

async function main(args: string[]): Promise<number> {
  const [command, name, ...rest] = args;
  if (
    !((command === "add" && name !== undefined && rest.length === 0) ||
      (command === "list" && name === undefined))
  ) {
    console.error(USAGE);
    return 2;
  }
  const kv = await openStore(Deno.env.get("DOCUMENTS_DB"), DEFAULT_DOCUMENTS_DB);
  try {
    if (command === "list") {
      for (const user of await listUsers(kv)) console.log(user.name);
      return 0;
    }
    const token = await addUser(kv, name!);
    console.log(`Added user "${name}". Their API token (shown once; set DOCUMENTS_TOKEN to it):`);
    console.log(token);
    return 0;
  } catch (error) {
    console.error(`users: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    kv.close();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
