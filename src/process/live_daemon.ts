/**
 * Whether the daemon a state folder's PID file names still runs, told without its lock: for a
 * `state_dir` on a file system that does not pass locks on (a FUSE mount such as bindfs by default,
 * some network shares), where a second start is granted the lock while the first daemon holds it.
 *
 * The daemon said its pid, the computer it runs on and when it started (`daemon.json`, written as
 * it took the lock). A process of that pid alive now on this computer, of the same program as this
 * one (`image-transfer`, or `deno` running it), that started before then is that daemon: a pid
 * names one live process at a time, so a later process given the same pid (the daemon killed, its
 * pid reused) started after it. Its start time and program are asked of `ps` (`etime`, the time it
 * has run, in whole seconds: read as started up to 1 s later than it did; `comm`); `/proc` is
 * readable only by a program with every permission.
 *
 * @module
 */

/** What the daemon said of itself that tells it (see `DaemonInfo` in `ledger/daemon_lock.ts`). */
export interface DaemonIdentity {
  pid: number;
  /** When it took the lock, ISO 8601. */
  startedAt?: string;
  /** The host name of the computer it runs on (none: an earlier version's, taken for this one). */
  host?: string;
}

/**
 * How much later than the daemon said it started its process may seem to have started: `etime`
 * is whole seconds, and `ps` reads the clock a moment after this process did.
 */
const START_SLACK_MS = 1_500;

/**
 * Whether the daemon `info` describes runs now: its process is alive on this computer, runs this
 * program and started before the daemon said it started. `false` (taken as stale, as it is when
 * the lock is free) for this process's own pid, another computer's daemon, a zombie, another
 * program, a process started later (its pid reused), one that `ps` cannot tell of, and on Windows
 * (no `ps`).
 */
export function daemonStillRuns(info: DaemonIdentity): boolean {
  if (Deno.build.os === "windows" || info.pid === Deno.pid) return false;
  const said = Date.parse(info.startedAt ?? "");
  if (Number.isNaN(said)) return false;
  if (info.host !== undefined && info.host !== thisHost()) return false;
  const found = aliveProcess(info.pid);
  return found !== undefined && found.ours && found.started <= said + START_SLACK_MS;
}

/**
 * The name of the program at `path` as `ps` gives it on every system: without its folder (macOS
 * gives the path), its first 15 characters (Linux keeps no more).
 */
function programName(path: string): string {
  return path.replace(/^.*[/\\]/, "").slice(0, 15);
}

/** This computer's host name, or `undefined` when it cannot be read. */
function thisHost(): string | undefined {
  try {
    return Deno.hostname();
  } catch {
    return undefined;
  }
}

/**
 * The process `pid`, if it is alive and not a zombie: when it started (ms since the epoch, up to
 * 1 s late), and whether it runs this program (named as this process is, or as this program's
 * file: one started through a link has the link's name); `undefined` when `ps` cannot tell.
 */
function aliveProcess(pid: number): { started: number; ours: boolean } | undefined {
  let out: Deno.CommandOutput;
  try {
    out = new Deno.Command("ps", {
      args: ["-o", "pid=", "-o", "stat=", "-o", "etime=", "-o", "comm=", "-p", String(pid)]
        .concat(["-p", String(Deno.pid)]),
      env: { LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync();
  } catch {
    return undefined; // No ps, or starting programs was given up.
  }
  const now = Date.now();
  const rows = new Map<number, string[]>();
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    // The program last: its name may hold spaces.
    const fields = /^\s*(\d+)\s+(\S+)\s+(\S+)\s+(.*\S)\s*$/.exec(line);
    if (fields) rows.set(Number(fields[1]), fields.slice(2));
  }
  const [stat, etime, program] = rows.get(pid) ?? [];
  const seconds = elapsedSeconds(etime ?? "");
  if (stat === undefined || stat.startsWith("Z") || seconds === undefined) return undefined;
  const names = [Deno.execPath(), rows.get(Deno.pid)?.[2] ?? ""].map(programName);
  return { started: now - seconds * 1000, ours: names.includes(programName(program)) };
}

/** The seconds of `ps`'s `etime`, `[[DD-]HH:]MM:SS`. */
export function elapsedSeconds(etime: string): number | undefined {
  const parts = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$/.exec(etime);
  if (!parts) return undefined;
  const [days, hours, minutes, seconds] = parts.slice(1).map((part) => Number(part ?? 0));
  return ((days * 24 + hours) * 60 + minutes) * 60 + seconds;
}
