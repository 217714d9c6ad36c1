import assert from "node:assert/strict";
import { DEFAULT_URL, parseArgs, UsageError } from "./_client_args.ts";

const url = DEFAULT_URL;

Deno.test("parseArgs() reads every command and option form", () => {
  const cases: [string[], unknown][] = [
    [["upload", "a.pdf"], { command: "upload", url, file: "a.pdf", name: undefined }],
    [["upload", "a.pdf", "--name", "b.pdf"], {
      command: "upload",
      url,
      file: "a.pdf",
      name: "b.pdf",
    }],
    [["--name=b c.pdf", "upload", "a.pdf"], {
      command: "upload",
      url,
      file: "a.pdf",
      name: "b c.pdf",
    }],
    [["download", "X"], { command: "download", url, id: "X", output: undefined }],
    [["download", "X", "-o", "out"], { command: "download", url, id: "X", output: "out" }],
    [["download", "-o", "-", "X"], { command: "download", url, id: "X", output: "-" }],
    [["download", "X", "--output=o"], { command: "download", url, id: "X", output: "o" }],
    [["list"], { command: "list", url }],
    [["list", "--url", "https://d.example/"], { command: "list", url: "https://d.example/" }],
    [["--url=http://h:1", "list"], { command: "list", url: "http://h:1" }],
    [["share", "X", "bob"], { command: "share", url, id: "X", user: "bob" }],
    [["unshare", "X", "bob"], { command: "unshare", url, id: "X", user: "bob" }],
    [["delete", "X"], { command: "delete", url, id: "X" }],
    [["upload", "--", "-dash.txt"], { command: "upload", url, file: "-dash.txt", name: undefined }],
    [["upload", "-"], { command: "upload", url, file: "-", name: undefined }],
    [["--help"], { command: "help" }],
    [["-h"], { command: "help" }],
    [["upload", "--help"], { command: "help" }],
    [["bogus", "-h"], { command: "help" }],
  ];
  for (const [args, expected] of cases) assert.deepEqual(parseArgs(args), expected, args.join(" "));
});

Deno.test("parseArgs() rejects every malformed command line with a UsageError saying what is wrong", () => {
  const cases: [string[], RegExp][] = [
    [[], /^Cannot run: no command given/],
    [["frobnicate"], /^Cannot run "frobnicate": unknown command/],
    [["upload"], /^Cannot upload: FILE is missing/],
    [["upload", "a", "b"], /^Cannot upload: unexpected argument "b"/],
    [["download"], /^Cannot download: ID is missing/],
    [["share", "X"], /^Cannot share: USER is missing/],
    [["unshare"], /^Cannot unshare: ID is missing/],
    [["delete", "X", "Y"], /^Cannot delete: unexpected argument "Y"/],
    [["list", "extra"], /^Cannot list: unexpected argument "extra"/],
    [["list", "--verbose"], /^Cannot parse the arguments: unknown option --verbose/],
    [["list", "-x"], /^Cannot parse the arguments: unknown option -x/],
    [["list", "--url"], /^Cannot parse the arguments: --url needs a value/],
    [["list", "--url="], /^Cannot parse the arguments: --url must not be empty/],
    [["list", "--url", "a", "--url", "b"], /--url is given twice/],
    [["list", "--url", "not a url"], /^Cannot use --url not a url: it is not a URL/],
    [["list", "--url", "ftp://h/"], /only http and https/],
    [["download", "X", "--name", "n"], /^Cannot download: --name is only for upload/],
    [["upload", "f", "-o", "n"], /^Cannot upload: -o is only for download/],
    [["download", "-o"], /-o needs a value/],
    [["delete", ""], /^Cannot delete: an argument is empty/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseArgs(args), (error: unknown) => {
      assert.ok(error instanceof UsageError, args.join(" "));
      assert.match(error.message, message, args.join(" "));
      return true;
    });
  }
});
