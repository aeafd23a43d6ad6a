/**
 * The processes running on this machine, as their command lines read from
 * `/proc` (Linux): what a test sees of the programs the product starts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

/** A running process: its id and its arguments, the program first. */
export interface RunningProcess {
  pid: number;
  argv: string[];
}

/** Every process running now whose arguments satisfy `matches` (zombies left out). */
export async function runningProcesses(
  matches: (argv: string[]) => boolean,
): Promise<RunningProcess[]> {
  const out: RunningProcess[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    if (cmdline === "" || /^\d+ \(.*\) Z/.test(stat)) continue;
    const argv = cmdline.replace(/\0$/, "").split("\0");
    if (matches(argv)) out.push({ pid: Number(entry.name), argv });
  }
  return out;
}

/** Whether process `pid` has ended (gone, or a zombie no one reaped yet). */
export function processEnded(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return true;
  }
}

/** The processes below `pid`: its children, theirs, and so on (Linux, from `/proc`). */
export async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    // Fields after the "(name)": state, ppid, ...
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    parents.set(Number(entry.name), ppid);
  }
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const [child, ppid] of parents) {
      if (ppid !== parent) continue;
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

/**
 * Kill a server and every process it started, connections being accepted
 * included. Each is stopped (SIGSTOP) before the tree is read again, so none
 * can fork a child that the kill misses: a connection accepted while the tree
 * was read would otherwise outlive the server (reparented, its socket open).
 */
export async function killTree(pid: number): Promise<void> {
  const signal = (target: number, name: Deno.Signal) => {
    try {
      Deno.kill(target, name);
    } catch { /* already gone */ }
  };
  signal(pid, "SIGSTOP");
  const stopped = new Set<number>();
  for (;;) {
    const fresh = (await descendants(pid)).filter((child) => !stopped.has(child));
    if (fresh.length === 0) break;
    for (const child of fresh) {
      signal(child, "SIGSTOP");
      stopped.add(child);
    }
  }
  for (const child of stopped) signal(child, "SIGKILL");
  signal(pid, "SIGKILL");
}

/**
 * Whether process `pid`, or one it started (a program run through a prefix that forks), holds a
 * socket listening on TCP `port` (any address, in its own network namespace), as `/proc` tells it
 * (Linux). A connection to the port says less: the port found free may have been taken by another
 * test's server meanwhile (test files run at once), which then answers there.
 */
export async function listensOn(pid: number, port: number): Promise<boolean> {
  for (const process of [pid, ...await descendants(pid)]) {
    if (await holdsListener(process, port)) return true;
  }
  return false;
}

/** Whether process `pid` itself holds a socket listening on TCP `port`. */
async function holdsListener(pid: number, port: number): Promise<boolean> {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const listening = new Set<string>();
  for (const table of ["tcp", "tcp6"]) {
    const text = await Deno.readTextFile(`/proc/${pid}/net/${table}`).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      if (fields[1]?.endsWith(hexPort) && fields[3] === "0A") listening.add(fields[9]);
    }
  }
  if (listening.size === 0) return false;
  try {
    for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
      const target = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined && listening.has(inode)) return true;
    }
  } catch { /* ended meanwhile */ }
  return false;
}

/** Set (to its name) in the process {@linkcode inOwnProcess} runs a test in. */
const OWN_PROCESS = "ITX_TEST_OWN_PROCESS";

/**
 * For a test that counts what its whole process holds (worker threads, threads waiting on a
 * share): test files run at once in one process, so another file's workers or calls would be
 * counted too. Called first in the test `name` of the file `module` (`import.meta.url`): in the
 * test run, it runs that test alone in a `deno test` process of its own, fails with that run's
 * output unless it passed, and returns `false` (the test has nothing more to do); in that process
 * it returns `true` (the test goes on).
 */
export async function inOwnProcess(name: string, module: string): Promise<boolean> {
  if (Deno.env.get(OWN_PROCESS) === name) return true;
  const config = fileURLToPath(new URL("../../deno.json", import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--allow-all",
      "--no-check",
      "--config",
      config,
      "--filter",
      name,
      fileURLToPath(module),
    ],
    env: { [OWN_PROCESS]: name, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success && /\b1 passed\b/.test(said), `the test in a process of its own:\n${said}`);
  return false;
}
