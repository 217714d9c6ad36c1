/**
 * Browser check of the documents web page (`deno task e2e`, run by CI):
 * starts the app the way `deno task serve` does (it starts its own key
 * service), then headless Chromium signs in, uploads a file, sees it listed,
 * downloads it and compares the bytes, shares it, and saves a screenshot.
 *
 * Needs Debian's `chromium` (`apt-get install -y chromium`; `CHROMIUM` names
 * another binary) and `playwright-core` from npm (pinned in deno.json).
 * Prints one line per check and ends with `e2e: N passed, N failed`; the
 * exit status is 1 when a check failed. The screenshot goes to
 * `E2E_SCREENSHOT` (default `data/e2e-screenshot.png`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import type { Page } from "playwright-core";
import { waitForListening } from "./_process.ts";

const HERE = new URL(".", import.meta.url);
const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const SCREENSHOT = Deno.env.get("E2E_SCREENSHOT") ?? "data/e2e-screenshot.png";
/** How long one browser step may take on a loaded machine. */
const STEP_MS = 30_000;
const FILE_NAME = "e2e report.pdf";

async function addUser(db: string, name: string): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "--allow-all", new URL("users.ts", HERE).href, "add", name],
    env: { DOCUMENTS_DB: db },
  }).output();
  if (code !== 0) throw new Error(new TextDecoder().decode(stderr));
  return new TextDecoder().decode(stdout).trimEnd().split("\n").at(-1)!;
}

async function main(): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "documents_e2e_" });
  const db = `${dir}/documents.sqlite3`;
  const results: [string, boolean][] = [];
  let app: Deno.ChildProcess | undefined;
  let browser: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined;
  let log = "";
  const check = async (name: string, fn: () => Promise<void>) => {
    if (results.some(([, ok]) => !ok)) {
      results.push([name, false]);
      return console.log(`e2e: ${name} ... not run`);
    }
    try {
      await fn();
      results.push([name, true]);
      console.log(`e2e: ${name} ... ok`);
    } catch (error) {
      results.push([name, false]);
      console.log(`e2e: ${name} ... FAILED\n${error instanceof Error ? error.stack : error}`);
    }
  };
  try {
    const alice = await addUser(db, "alice");
    await addUser(db, "bob");
    // One command, as a user runs it: main.ts starts its own key service.
    app = new Deno.Command(Deno.execPath(), {
      args: ["run", "--unstable-kv", "--allow-all", new URL("main.ts", HERE).href],
      env: { HOST: "127.0.0.1", PORT: "0", DOCUMENTS_DB: db, KEY_SERVICE_URL: "" },
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let url = "";
    await check("the app starts with its own key service", async () => {
      url = await waitForListening(app!.stdout, STEP_MS, (text) => (log += text), "documents");
      assert.match(log, /key service: Listening on http:\/\/127\.0\.0\.1:\d+\//);
    });
    const userData = await Deno.makeTempDir({ dir, prefix: "chromium_" });
    browser = await chromium.launchPersistentContext(userData, {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1100, height: 640 },
    });
    browser.setDefaultTimeout(STEP_MS);
    const page: Page = browser.pages()[0] ?? await browser.newPage();
    // The page's own errors explain a failed step.
    page.on("pageerror", (error) => console.log(`e2e: page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") console.log(`e2e: page console: ${message.text()}`);
    });
    const content = new Uint8Array(65_536 * 3 + 17);
    // getRandomValues fills at most 65,536 bytes per call.
    for (let i = 0; i < content.length; i += 65_536) {
      crypto.getRandomValues(content.subarray(i, i + 65_536));
    }
    const file = `${dir}/${FILE_NAME}`;
    await Deno.writeFile(file, content);

    await check("signs in with name and token", async () => {
      await page.goto(url);
      await page.fill("#name", "alice");
      await page.fill("#token", alice);
      await page.click("#signin button[type=submit]");
      await page.waitForSelector("#documents:not([hidden])");
      assert.equal(await page.textContent("#user"), "alice");
      const cookies = await browser!.cookies(url);
      const session = cookies.find((c) => c.name === "documents_session");
      assert.ok(
        session?.httpOnly && session.sameSite === "Strict",
        "HttpOnly SameSite=Strict cookie",
      );
    });
    await check("uploads a file and sees it listed", async () => {
      await page.setInputFiles("#file", file);
      await page.click("#upload button[type=submit]");
      await page.waitForSelector(`#list a:text-is("${FILE_NAME}")`);
      assert.match(await page.textContent("#status") ?? "", /Uploaded e2e report\.pdf/);
      assert.match(await page.textContent("#list") ?? "", /192\.0 KiB/);
    });
    await check("downloads it with the same bytes", async () => {
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.click(`#list a:text-is("${FILE_NAME}")`),
      ]);
      assert.equal(download.suggestedFilename(), FILE_NAME);
      const saved = await Deno.readFile(await download.path());
      assert.deepEqual(saved, content);
    });
    await check("shares it with bob", async () => {
      await page.fill(`input[aria-label="Share ${FILE_NAME} with"]`, "bob");
      await page.click(`button[aria-label="Share ${FILE_NAME}"]`);
      await page.waitForSelector(`#list .reader:has-text("bob")`);
      assert.match(await page.textContent("#status") ?? "", /Shared e2e report\.pdf with bob/);
    });
    await check("a forged request without the CSRF token is refused", async () => {
      const status = await page.evaluate(async () =>
        (await fetch("/api/documents?name=forged.txt", { method: "POST", body: "x" })).status
      );
      assert.equal(status, 403);
    });
    await check("saves a screenshot", async () => {
      const slash = SCREENSHOT.lastIndexOf("/");
      if (slash > 0) await Deno.mkdir(SCREENSHOT.slice(0, slash), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      assert.ok((await Deno.stat(SCREENSHOT)).size > 1_000);
      console.log(`e2e: screenshot in ${SCREENSHOT}`);
    });
  } catch (error) {
    results.push(["setup", false]);
    console.log(`e2e: setup FAILED\n${error instanceof Error ? error.stack : error}\n${log}`);
  } finally {
    await browser?.close().catch(() => {});
    if (app !== undefined) {
      app.kill("SIGTERM");
      await app.status;
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const passed = results.filter(([, ok]) => ok).length;
  const failed = results.length - passed;
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
