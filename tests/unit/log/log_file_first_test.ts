/**
 * The log file holds every line before stderr shows it: a daemon killed the moment after a line
 * appeared on its console (SIGKILL, the out-of-memory killer) leaves that line in its log file,
 * also while a reload (SIGHUP) replaces the logging set-up.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { logger, setupLogging, shutdownLogging } from "../../../src/log/logging.ts";

/**
 * Run `body` with every write to stderr checked at its moment: the lines it brings must be in
 * `file` already. Returns the lines stderr got and those the file did not hold then.
 */
async function checkingStderr(
  file: string,
  body: () => Promise<void>,
): Promise<{ shown: string[]; missing: string[] }> {
  const shown: string[] = [];
  const missing: string[] = [];
  const decoder = new TextDecoder();
  const stderr = Deno.stderr as { writeSync(bytes: Uint8Array): number };
  const write = stderr.writeSync;
  stderr.writeSync = (bytes) => {
    const held = Deno.readTextFileSync(file);
    for (const line of decoder.decode(bytes).split("\n").filter((line) => line !== "")) {
      shown.push(line);
      if (!held.split("\n").includes(line)) missing.push(line);
    }
    return bytes.length;
  };
  try {
    await body();
  } finally {
    stderr.writeSync = write;
  }
  return { shown, missing };
}

Deno.test("a logged line is in the log file before it reaches stderr", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-log-" });
  try {
    const file = join(dir, "it.log");
    const { shown, missing } = await checkingStderr(file, async () => {
      await setupLogging({ verbose: false, logFile: file, format: "text" });
      try {
        logger("daemon").info("Starting");
        logger("pipeline").with({ job: "north" }).info("Successfully transferred {source}", {
          source: "m31 $(x).fits",
        });
        logger("watch").warn("a warning");
      } finally {
        await shutdownLogging();
      }
    });
    assert.equal(shown.length, 3, shown.join("\n"));
    assert.deepEqual(missing, [], "lines on stderr not yet in the log file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lines logged while a reload replaces the logging set-up are in the log file before stderr", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-log-" });
  try {
    const file = join(dir, "it.log");
    const sent = logger("pipeline").with({ job: "north" });
    const { shown, missing } = await checkingStderr(file, async () => {
      await setupLogging({ verbose: false, logFile: file, format: "text" });
      // The daemon goes on while it reloads: a transfer that ends as the reload opens the new
      // log file logs in the same turn of the event loop, between the steps LogTape takes to
      // put the new set-up in place (each a moment other awaiting code runs in).
      const openSync = Deno.openSync;
      let lines = 0;
      let during: Promise<void> | undefined;
      Deno.openSync = (path, options) => {
        const opened = openSync(path, options);
        during ??= (async () => {
          for (; lines < 40; lines++) {
            await null;
            sent.info("Successfully transferred {source}", { source: `m${lines}.fits` });
          }
        })();
        return opened;
      };
      try {
        await setupLogging({ verbose: false, logFile: file, format: "text" });
      } finally {
        Deno.openSync = openSync;
      }
      await during;
      assert.equal(lines, 40);
      sent.info("after the reload");
      await shutdownLogging();
    });
    assert.equal(shown.length, 41, shown.join("\n"));
    assert.deepEqual(missing, [], "lines on stderr not in the log file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
