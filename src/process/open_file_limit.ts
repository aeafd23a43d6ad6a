/**
 * This process's open-file limit (`ulimit -n`, `RLIMIT_NOFILE`), and whether it is enough for the
 * daemon: each transfer holds files and pipes, and a program that runs out of them fails every
 * file it opens ("Too many open files"). Read from `/proc/<pid>/limits` on Linux (its soft and
 * hard limit), through `cat`: the runtime opens nothing under `/proc` without every permission.
 * Elsewhere a shell's `ulimit` says the soft and hard limit it inherited.
 *
 * @module
 */
import { runProcess } from "./run.ts";

/** The open-file limit of this process; `Infinity`: unlimited. */
export interface OpenFileLimit {
  /** The limit in force. */
  soft: number;
  /** How far the soft limit may be raised without privileges. */
  hard: number;
}

/** Below this soft limit, transfers side by side may run out of open files: a warning. */
export const OPEN_FILES_FLOOR = 256;
/** Below this soft limit, the idle daemon alone (about 50) leaves nothing for its work: refused. */
export const OPEN_FILES_MINIMUM = 64;
/** The limit the messages and the service templates suggest. */
export const OPEN_FILES_SUGGESTED = 4096;

/** The limit from the text of `/proc/<pid>/limits` (its `Max open files` line), or `null`. */
export function parseProcLimits(text: string): OpenFileLimit | null {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (match === null) return null;
  const soft = limitValue(match[1]), hard = limitValue(match[2]);
  return soft === null || hard === null ? null : { soft, hard };
}

/** `unlimited` or a count; `null` for anything else. */
function limitValue(word: string): number | null {
  if (word === "unlimited") return Infinity;
  return /^\d+$/.test(word) ? Number(word) : null;
}

/** This process's open-file limit, or `null` when it cannot be read (Windows: none). */
export async function readOpenFileLimit(): Promise<OpenFileLimit | null> {
  if (Deno.build.os === "windows") return null;
  const linux = Deno.build.os === "linux";
  const argv = linux ? ["cat", `/proc/${Deno.pid}/limits`] : ["sh", "-c", "ulimit -Sn; ulimit -Hn"];
  try {
    const { stdout } = await runProcess(argv, { timeoutMs: 10_000 });
    const text = new TextDecoder().decode(stdout);
    if (linux) return parseProcLimits(text);
    const [soft, hard] = text.trim().split(/\s+/).map(limitValue);
    return soft === null || soft === undefined || hard === null || hard === undefined
      ? null
      : { soft, hard };
  } catch {
    return null;
  }
}

/**
 * What is wrong with `limit` and what to do: `refuse` below {@linkcode OPEN_FILES_MINIMUM},
 * `warn` below {@linkcode OPEN_FILES_FLOOR}; `null` when it is enough.
 */
export function openFileLimitProblem(
  limit: OpenFileLimit,
): { level: "refuse" | "warn"; message: string } | null {
  if (limit.soft >= OPEN_FILES_FLOOR) return null;
  const level = limit.soft < OPEN_FILES_MINIMUM ? "refuse" : "warn";
  const consequence = level === "refuse"
    ? `the daemon alone holds about 50, so it cannot work (the runtime may even crash)`
    : `transfers side by side run out of open files and are tried again later`;
  const target = Math.max(Math.min(OPEN_FILES_SUGGESTED, limit.hard), OPEN_FILES_FLOOR);
  const hard = limit.hard < OPEN_FILES_FLOOR
    ? ` (its hard limit is ${limit.hard}: raising it needs root)`
    : "";
  return {
    level,
    message: `this process may open only ${limit.soft} files (ulimit -n), below the ` +
      `${OPEN_FILES_FLOOR} the daemon needs: ${consequence}; raise the limit to ${target} or ` +
      `more${hard}: "ulimit -n ${target}" before starting it, LimitNOFILE= in its systemd ` +
      "service, NumberOfFiles in its launchd job's SoftResourceLimits",
  };
}
