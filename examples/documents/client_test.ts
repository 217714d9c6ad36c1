/**
 * The CLI client run as a user runs it (a child process) against the real
 * app and key service: every command, the failure lines and exit codes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Servers } from "./_servers_test_util.ts";

const CLIENT = new URL("./client.ts", import.meta.url).href;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  bytes: Uint8Array;
}

async function client(
  args: string[],
  options: { token?: string; cwd?: string } = {},
): Promise<Run> {
  // An empty DOCUMENTS_TOKEN counts as unset, whatever the caller's environment holds.
  const env = { NO_COLOR: "1", DOCUMENTS_TOKEN: options.token ?? "" };
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", "--allow-write", "--allow-env", CLIENT, ...args],
    env,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr), bytes: stdout };
}

/** A failure: exit `code`, and exactly one line on stderr matching `line`. */
function assertFailure(run: Run, code: number, line: RegExp): void {
  assert.equal(run.code, code, run.stderr);
  const lines = run.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0]!, line);
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

Deno.test("client: every command against a running app, failures in one line", async (t) => {
  const servers = await Servers.start({ maxUploadBytes: 2 * 1024 * 1024 });
  const work = await Deno.makeTempDir({ prefix: "documents_client_" });
  try {
    const alice = await servers.addUser("alice");
    const bob = await servers.addUser("bob");
    const url = servers.url;
    const content = crypto.getRandomValues(new Uint8Array(60_000));
    const big = new Uint8Array(1024 * 1024 + 70_000).fill(7);
    await Deno.writeFile(`${work}/report.pdf`, big);
    let id = "";

    await t.step("--help, usage errors and a missing token exit 2", async () => {
      const help = await client(["--help"]);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /^Usage: deno task client/);
      assertFailure(await client([]), 2, /^client: Cannot run: no command given/);
      assertFailure(await client(["upload"]), 2, /^client: Cannot upload: FILE is missing/);
      assertFailure(await client(["list", "--bogus"]), 2, /unknown option --bogus/);
      assertFailure(
        await client(["list", "--url", url]),
        2,
        /^client: Cannot list: set DOCUMENTS_TOKEN/,
      );
    });

    await t.step("upload, list, download (to a file, by its name, to stdout)", async () => {
      const up = await client([
        "--url",
        url,
        "upload",
        `${work}/report.pdf`,
        "--name",
        "Q3 report.pdf",
      ], {
        token: alice,
      });
      assert.equal(up.code, 0, up.stderr);
      id = up.stdout.trimEnd().split("\n").at(-1)!;
      assert.match(
        id,
        /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/,
        "never starts with - (it would read as an option)",
      );
      assert.match(up.stdout, /Uploaded Q3 report\.pdf \(1118576 bytes\)/);

      const list = await client(["list", "--url", url], { token: alice });
      assert.equal(list.code, 0);
      assert.match(list.stdout, new RegExp(`^${id}\\s+1118576\\talice\\tQ3 report\\.pdf$`, "m"));

      const out = await client(["download", id, "-o", `${work}/copy.pdf`, "--url", url], {
        token: alice,
      });
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(await Deno.readFile(`${work}/copy.pdf`), big);

      const byName = await client(["download", id, "--url", url], { token: alice, cwd: work });
      assert.equal(byName.code, 0, byName.stderr);
      assert.deepEqual(await Deno.readFile(`${work}/Q3 report.pdf`), big);

      await Deno.writeFile(`${work}/small.bin`, content);
      const small = await client(["upload", `${work}/small.bin`, "--url", url], { token: alice });
      const smallId = small.stdout.trimEnd().split("\n").at(-1)!;
      const piped = await client(["download", smallId, "-o", "-", "--url", url], { token: alice });
      assert.equal(piped.code, 0);
      assert.deepEqual(piped.bytes, content);
    });

    await t.step("share, unshare: the reader's download works, then fails with 404", async () => {
      const share = await client(["share", id, "bob", "--url", url], { token: alice });
      assert.equal(share.code, 0, share.stderr);
      assert.match(share.stdout, /Shared .* with bob/);
      const asBob = await client(["download", id, "-o", `${work}/bob.pdf`, "--url", url], {
        token: bob,
      });
      assert.equal(asBob.code, 0, asBob.stderr);
      assert.deepEqual(await Deno.readFile(`${work}/bob.pdf`), big);
      const listed = await client(["list", "--url", url], { token: bob });
      assert.match(listed.stdout, /shared with bob/);

      const byBob = await client(["share", id, "bob", "--url", url], { token: bob });
      assertFailure(
        byBob,
        1,
        /^client: Cannot share .*: HTTP 403: Cannot change the document: only its owner can$/,
      );
      const unknown = await client(["share", id, "nobody", "--url", url], { token: alice });
      assertFailure(
        unknown,
        1,
        /^client: Cannot share .*: HTTP 404: Cannot share: there is no user "nobody"$/,
      );

      const unshare = await client(["unshare", id, "bob", "--url", url], { token: alice });
      assert.equal(unshare.code, 0, unshare.stderr);
      // A failed download leaves the existing target untouched and no partial file.
      await Deno.writeTextFile(`${work}/bob.pdf`, "old");
      const before = await listDir(work);
      const denied = await client(["download", id, "-o", `${work}/bob.pdf`, "--url", url], {
        token: bob,
      });
      assertFailure(
        denied,
        1,
        new RegExp(`^client: Cannot download ${id}: HTTP 404: Cannot find the document$`),
      );
      assert.equal(await Deno.readTextFile(`${work}/bob.pdf`), "old");
      assert.deepEqual(await listDir(work), before);
    });

    await t.step("failure lines: 401, 413, unreachable, no such file, no such folder", async () => {
      const badToken = await client(["list", "--url", url], { token: "doc_wrong" });
      assertFailure(
        badToken,
        1,
        /^client: Cannot list documents: HTTP 401: .*\(check DOCUMENTS_TOKEN\)$/,
      );

      const tooBig = new Uint8Array(2 * 1024 * 1024 + 1);
      await Deno.writeFile(`${work}/huge.bin`, tooBig);
      const refused = await client(["upload", `${work}/huge.bin`, "--url", url], { token: alice });
      assertFailure(
        refused,
        1,
        /^client: Cannot upload .*huge\.bin: HTTP 413: Cannot store the document: it is larger than 2097152 bytes$/,
      );

      // A port nobody listens on: the app's port after it is closed would race, so bind and release one.
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const closedPort = (listener.addr as Deno.NetAddr).port;
      listener.close();
      const down = await client(["list", "--url", `http://127.0.0.1:${closedPort}`], {
        token: alice,
      });
      assertFailure(
        down,
        1,
        new RegExp(
          `^client: Cannot list documents: the server at http://127\\.0\\.0\\.1:${closedPort}/ is unreachable \\(connection refused\\)$`,
        ),
      );
      const upDown = await client([
        "upload",
        `${work}/report.pdf`,
        "--url",
        `http://127.0.0.1:${closedPort}`,
      ], { token: alice });
      assertFailure(
        upDown,
        1,
        /^client: Cannot upload .*: the server at .* is unreachable \(connection refused\)$/,
      );

      const missing = await client(["upload", `${work}/nope.txt`, "--url", url], { token: alice });
      assertFailure(missing, 1, /^client: Cannot upload .*nope\.txt: no such file$/);
      const folder = await client(["upload", work, "--url", url], { token: alice });
      assertFailure(folder, 1, /^client: Cannot upload .*: it is not a regular file$/);

      const noDir = await client(["download", id, "-o", `${work}/no/such/dir/x`, "--url", url], {
        token: alice,
      });
      assertFailure(
        noDir,
        1,
        /^client: Cannot download .*: cannot write in .*no\/such\/dir \(no such file\)$/,
      );
    });

    const tiny = `${work}/tiny`;
    await Deno.mkdir(tiny);
    // A 512 KiB tmpfs stands for a full disk; mounting needs root (CI and the dev boxes are).
    const mounted = (await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=512k", "tmpfs", tiny],
      stderr: "null",
    }).output()).code === 0;
    await t.step({
      name: "disk full: one line, exit 1, no partial file left",
      ignore: !mounted,
      async fn() {
        try {
          const full = await client(["download", id, "-o", `${tiny}/copy.pdf`, "--url", url], {
            token: alice,
          });
          assertFailure(
            full,
            1,
            new RegExp(
              `^client: Cannot download ${id}: the disk is full \\(writing ${tiny}/copy\\.pdf\\)$`,
            ),
          );
          assert.deepEqual(await listDir(tiny), []);
        } finally {
          await new Deno.Command("umount", { args: [tiny] }).output();
        }
      },
    });

    await t.step("delete: gone for everyone", async () => {
      const del = await client(["delete", id, "--url", url], { token: alice });
      assert.equal(del.code, 0, del.stderr);
      const after = await client(["download", id, "-o", `${work}/gone`, "--url", url], {
        token: alice,
      });
      assertFailure(after, 1, /HTTP 404: Cannot find the document$/);
      await assert.rejects(Deno.stat(`${work}/gone`), Deno.errors.NotFound);
      const again = await client(["delete", id, "--url", url], { token: alice });
      assertFailure(again, 1, /^client: Cannot delete .*: HTTP 404/);
    });
  } finally {
    await servers.stop();
    await Deno.remove(work, { recursive: true });
  }
});
