/**
 * Waits for a server child process to print its listening line.
 *
 * @module
 */

import { LISTENING_PREFIX } from "./_http.ts";

/**
 * Reads a child's stdout until the line `… Listening on URL`, then hands
 * every later byte to `rest` (so the pipe never fills and blocks the child).
 *
 * @param stdout The child's piped stdout.
 * @param timeoutMs How long to wait.
 * @param rest Receives what was read (including the listening line) and everything after.
 * @param label Whose line to wait for (the app forwards its key service's output too).
 * @returns The URL.
 * @throws {Error} when the child exits first or the time runs out.
 */
export async function waitForListening(
  stdout: ReadableStream<Uint8Array>,
  timeoutMs: number,
  rest: (text: string) => void = () => {},
  label = "",
): Promise<string> {
  const marker = `${label}${label === "" ? "" : ": "}${LISTENING_PREFIX}`;
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel();
  }, timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        throw new Error(
          `Cannot start the server: it ${
            timedOut ? "did not listen in time" : "exited before listening"
          }`,
        );
      }
      buffered += value;
      const at = buffered.indexOf(marker);
      const end = buffered.indexOf("\n", at);
      if (at >= 0 && end > at) {
        rest(buffered);
        drain(reader, rest);
        return buffered.slice(at + marker.length, end).trim();
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

async function drain(reader: ReadableStreamDefaultReader<string>, rest: (text: string) => void) {
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      rest(value);
    }
  } catch {
    // The child went away.
  }
}
