/**
 * The last step of an SSH batch: one remote call that verifies each uploaded
 * copy, gives it the source's permission bits and mtime, renames it into
 * place, removes the copies of failed files and the batch's upload folders.
 *
 * @module
 */
import { posix } from "node:path";
import type { JobConfig } from "../config/types.ts";
import { TransferError } from "../errors.ts";
import {
  classifyFailure,
  classifyText,
  type FailureContext,
  sourceUnreadable,
} from "./classify.ts";
import {
  buildFinishScript,
  type FinishEntry,
  type FinishResult,
  newMarker,
  parseScriptOutput,
} from "./remote_verify.ts";
import { sha256File } from "./sha256.ts";
import type { Plan } from "./ssh_plan.ts";
import type { SshSession } from "./ssh.ts";
import { deliveredPermissions } from "./source_open.ts";

/** What the finishing step needs of its transport. */
export interface FinishContext {
  session: SshSession;
  job: JobConfig;
  context: FailureContext;
  timeoutMs: number;
  /** The user-facing location of a destination. */
  describeTarget(destination: string): string;
}

/**
 * A failed upload is taken for a full disk when the destination folder has
 * less room left than the file plus this much (SFTP servers report a full
 * disk as a bare "Failure").
 */
const FULL_MARGIN_BYTES = 1024 * 1024;

/**
 * Verify and rename the good copies of `plans`, remove the others' copies
 * and the `uploadFolders`; record each outcome on its plan.
 *
 * @returns whether the remote call ran (when not, the upload folders may be left)
 * @throws `signal.reason` when aborted
 */
export async function finishBatch(
  ctx: FinishContext,
  plans: Plan[],
  uploadFolders: string[],
  signal: AbortSignal,
): Promise<boolean> {
  if (plans.length === 0) return true;
  const entries: FinishEntry[] = [];
  for (const plan of plans) entries.push(await entryFor(ctx, plan));
  // Where an upload failed for a reason the server did not name, ask how much room is left.
  const spaceFolders = [
    ...new Set(
      plans.filter((plan) =>
        (plan.uploadFailed && plan.error?.kind === "retry") || plan.callFailure !== null
      ).map((plan) => posix.dirname(plan.finalPath)),
    ),
  ];
  const marker = newMarker();
  let stdout: string;
  try {
    const script = buildFinishScript(entries, marker, {
      removeFolders: uploadFolders,
      sync: ctx.job.remote_sync,
      spaceFolders,
    });
    stdout = await ctx.session.runScript(script, { timeoutMs: ctx.timeoutMs, signal });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    for (const plan of plans) {
      plan.error ??= classifyFailure(error, `finish ${plan.item.source}`, ctx.context);
    }
    return false;
  }
  const { results, availableKiB } = parseScriptOutput(stdout, marker);
  for (const plan of plans) {
    plan.error ??= resultError(ctx, plan, results.get(plan.index));
    const fromUpload = plan.uploadFailed ||
      (plan.error !== null && plan.error === plan.callFailure);
    const kiB = availableKiB.get(spaceFolders.indexOf(posix.dirname(plan.finalPath)));
    if (
      plan.error?.kind === "retry" && fromUpload && kiB !== undefined &&
      kiB * 1024 < plan.item.size + FULL_MARGIN_BYTES
    ) {
      plan.error = diskFull(ctx, plan, kiB);
    }
  }
  return true;
}

/** The finish entry of one plan (hashing its source now if a failed call makes that necessary). */
async function entryFor(ctx: FinishContext, plan: Plan): Promise<FinishEntry> {
  if (plan.callFailure && !plan.error) {
    // Never trust a copy of a failed call by its size: compare its bytes.
    plan.remoteSha256 = null;
    plan.sha256 ??= sha256File(plan.item.source);
  }
  let localSha256: string | null = null;
  if (plan.sha256 && !plan.error) {
    try {
      localSha256 = await plan.sha256;
    } catch (error) {
      plan.error = sourceUnreadable(plan.item.source, error);
    }
  }
  if (plan.remoteSha256 !== null && localSha256 !== null && !plan.error) {
    // Hashed while written: settled here, and the copy is removed on a mismatch.
    if (plan.remoteSha256 !== localSha256) plan.error = checksumMismatch(ctx, plan);
  }
  if (plan.error) {
    return {
      index: plan.index,
      tempPath: plan.tempPath,
      finalPath: null,
      expectedSize: null,
      expectedSha256: null,
    };
  }
  const checkSize = ctx.job.verify_transfer !== "none" || plan.callFailure !== null;
  return {
    index: plan.index,
    tempPath: plan.tempPath,
    finalPath: plan.finalPath,
    expectedSize: checkSize ? plan.item.size : null,
    expectedSha256: plan.remoteSha256 === null ? localSha256 : null,
    permissions: plan.source ? deliveredPermissions(plan.source) : undefined,
    times: plan.source ? { atimeMs: plan.source.atimeMs, mtimeMs: plan.item.mtimeMs } : undefined,
  };
}

function diskFull(ctx: FinishContext, plan: Plan, kiB: number): TransferError {
  const { kind, reason } = classifyText("No space left on device", ctx.context);
  return new TransferError(
    `Cannot send ${plan.item.source} to ${ctx.describeTarget(plan.item.destination)}: ${reason} ` +
      `(${kiB} KiB left there, ${plan.item.size} bytes to write)`,
    kind,
    { cause: plan.error },
  );
}

function checksumMismatch(ctx: FinishContext, plan: Plan): TransferError {
  return new TransferError(
    `Cannot send ${plan.item.source} to ${ctx.describeTarget(plan.item.destination)}: ` +
      "SHA-256 of the copy differs from the source; the copy was removed",
    "retry",
  );
}

function resultError(
  ctx: FinishContext,
  plan: Plan,
  result: FinishResult | undefined,
): TransferError | null {
  const source = plan.item.source;
  const target = ctx.describeTarget(plan.item.destination);
  const fail = (reason: string, kind: TransferError["kind"] = "retry") =>
    new TransferError(`Cannot send ${source} to ${target}: ${reason}`, kind);
  if (result === undefined) return fail("no result from the remote host");
  switch (result.status) {
    case "ok":
      return null;
    case "missing":
      return plan.callFailure ?? fail("the uploaded copy is missing");
    case "size-mismatch":
      return plan.callFailure ??
        fail(
          `size check failed (${result.actual} bytes arrived, ${plan.item.size} expected); ` +
            "the copy was removed",
        );
    case "size-unknown":
      return fail("cannot read the size of the uploaded copy (stat failed)");
    case "checksum-mismatch":
      return plan.callFailure ?? checksumMismatch(ctx, plan);
    case "no-hash-tool":
      return plan.callFailure ?? fail(
        "neither sha256sum nor shasum exists on the remote host: install coreutils (or perl's " +
          "shasum) there, or set verify_transfer: size",
        "fatal",
      );
    case "final-is-folder":
      return fail("a folder exists under the final name: remove or rename it", "fatal");
    case "rename-failed": {
      const { kind, reason } = classifyText(result.message, ctx.context);
      return fail(`cannot rename the copy into place: ${reason} (${result.message})`, kind);
    }
  }
}
