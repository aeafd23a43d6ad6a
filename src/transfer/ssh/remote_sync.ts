/**
 * With `remote_sync`, what the SSH destination's flushes say (`flush_folders` in
 * `remote/prologue.sh`): a copy counts as arrived only once the server said its data and its
 * rename are on disk. A flush that fails before the renames fails the copies before any is
 * renamed; one after them leaves the copies in place, not counted (see
 * `FinishContext.unflushed` in `finish.ts`); one while a large batch uploads fails the batch's
 * copies, since the file system tells a write-back error once, so a later flush may succeed over
 * data that was lost.
 *
 * @module
 */
import { posix } from "node:path";
import { CommandError, type TransferError } from "../../errors.ts";
import { escapeControlChars as oneLine } from "../../log/logging.ts";
import { classifyFailure, type FailureContext, RemoteFailure } from "../classify.ts";
import { live } from "../deliver.ts";
import { buildScript, call, parseResults } from "./remote_script.ts";
import type { SshDelivery, SshMethod } from "./method.ts";

/**
 * The error of `delivery` whose copy the server could not confirm on its disk (`said`: what
 * sync said), `before` the renames (its copy was removed), or once it was `renamed` into place
 * (where it stays, not counted as arrived: see `FinishContext.unflushed`).
 */
export function notWrittenOut(
  ctx: { context: FailureContext; describeTarget(destination: string): string },
  delivery: SshDelivery,
  said: string,
  when: "before" | "renamed",
): TransferError {
  const target = ctx.describeTarget(delivery.item.destination);
  const what = when === "before"
    ? "its copy was not written out"
    : "its copy is in place, but the server did not confirm it on disk after the rename " +
      "(remote_sync): not counted as arrived, it is sent again";
  return classifyFailure(
    new RemoteFailure(said),
    `send ${delivery.item.source} to ${target}: ${what}`,
    ctx.context,
  );
}

/**
 * With `remote_sync`, a batch of at least this many bytes has the destination
 * file systems flushed while it uploads (`SshBatch.put` in `ssh/batch.ts`).
 */
const FLUSH_WHILE_UPLOADING_BYTES = 64 * 1024 * 1024;

/** How often those flushes start, at most. */
const FLUSH_INTERVAL_MS = 1000;

/**
 * With `remote_sync` and a batch of {@linkcode FLUSH_WHILE_UPLOADING_BYTES}
 * or more: flush the destination file systems every
 * {@linkcode FLUSH_INTERVAL_MS} while the upload runs (one small ssh call
 * each, only when a shared session is free), so the flush before the
 * renames finds little left to write. Returns the function that stops it;
 * where the server said a flush failed, it fails every delivery still under
 * way: the file system tells a write-back error once, so a later flush may
 * succeed over data that was lost.
 */
export function flushWhileUploading(
  method: Pick<SshMethod, "job" | "session" | "timeoutMs" | "context" | "describeTarget">,
  deliveries: SshDelivery[],
  signal: AbortSignal,
): () => Promise<void> {
  const bytes = deliveries.reduce((sum, delivery) => sum + delivery.item.size, 0);
  if (!method.job.remote_sync || bytes < FLUSH_WHILE_UPLOADING_BYTES) {
    return () => Promise.resolve();
  }
  const folders = [...new Set(deliveries.map((delivery) => posix.dirname(delivery.finalPath)))];
  // Stopping starts no new flush but waits for the one under way (bounded by the call's timeout):
  // the error it may meet is told once, and only to it.
  let stopping = false;
  const wake = new AbortController();
  const stopNow = () => {
    stopping = true;
    wake.abort();
  };
  signal.addEventListener("abort", stopNow, { once: true });
  let failed: string | null = null;
  const flushing = (async () => {
    while (!stopping && failed === null) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, FLUSH_INTERVAL_MS);
        wake.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve(undefined);
        }, { once: true });
      });
      if (stopping) break;
      const script = buildScript(null, [call("report_flush", ...folders)]);
      let stdout: string;
      try {
        stdout = await method.session.runScript(script.text, {
          timeoutMs: method.timeoutMs,
          signal,
          onlyIfFree: true,
        });
      } catch (error) {
        if (signal.aborted) break;
        // No free session: nothing ran, no harm (the flush before the renames does it anyway).
        if (!(error instanceof CommandError)) continue;
        // It ran and gave no answer: what its flush met is not known.
        failed = `a flush while uploading gave no answer: ${oneLine(error.message)}`;
        break;
      }
      const said = parseResults(stdout, script.marker).find((r) => r.word === "flush-failed");
      if (said) failed = said.detail;
    }
  })();
  return async () => {
    signal.removeEventListener("abort", stopNow);
    stopNow();
    await flushing;
    if (failed === null) return;
    const ctx = { context: method.context, describeTarget: method.describeTarget.bind(method) };
    // Copies of failed uploads too: none is kept to be continued.
    for (const delivery of deliveries) delivery.notWrittenOut = true;
    for (const delivery of live(deliveries)) {
      delivery.error = notWrittenOut(ctx, delivery, failed, "before");
    }
  };
}
