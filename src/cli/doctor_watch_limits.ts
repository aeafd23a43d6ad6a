/**
 * `doctor`'s check of the inotify limits (Linux) against a job's watch tree.
 *
 * @module
 */
import { runProcess } from "../process/run.ts";
import {
  checkWatchLimits,
  INOTIFY_LIMITS_COMMAND,
  NAMESPACE_WATCHES_COMMAND,
  parseInotifyLimits,
} from "../watch/watch_limits.ts";

/**
 * Report (`ok`, `WARN`, or `skip` when they cannot be read) whether the
 * inotify limits suit the watch tree at `watchPath`; nothing off Linux.
 */
export async function checkInotifyLimits(
  watchPath: string,
  line: (verdict: "ok" | "warn" | "skip", check: string, detail: string) => void,
): Promise<void> {
  if (Deno.build.os !== "linux") return;
  const limits = await runProcess(INOTIFY_LIMITS_COMMAND, { timeoutMs: 10_000 }).then(
    (result) => parseInotifyLimits(new TextDecoder().decode(result.stdout)),
    () => null,
  );
  if (!limits) return line("skip", "watch limits", "cannot read them with sysctl");
  // Only where user namespaces limit watches (Linux 4.9+); without it the system's limit stands.
  const namespace = await runProcess(NAMESPACE_WATCHES_COMMAND, { timeoutMs: 10_000 }).then(
    (result) => Number(new TextDecoder().decode(result.stdout).trim()),
    () => NaN,
  );
  if (Number.isInteger(namespace)) limits.namespaceWatches = namespace;
  const { ok, detail } = checkWatchLimits(watchPath, limits);
  line(ok ? "ok" : "warn", "watch limits", detail);
}
