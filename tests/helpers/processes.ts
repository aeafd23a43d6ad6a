/**
 * The processes running on this machine, as their command lines read from
 * `/proc` (Linux): what a test sees of the programs the product starts.
 *
 * @module
 */

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
