/**
 * The daemon's own process figures under the names every Prometheus client
 * uses (`process_*`): resident memory, CPU seconds and start time on every
 * system; open and maximum file descriptors and virtual memory where Linux's
 * `/proc/self` tells them. What a system does not tell is left out, never
 * guessed.
 *
 * @module
 */
import process from "node:process";

/** One metric family: name, type, help and its single value. */
export interface ProcessFigure {
  name: string;
  type: "counter" | "gauge";
  help: string;
  value: number;
}

/** The process figures available now, in exposition order. */
export function processFigures(): ProcessFigure[] {
  const cpu = process.cpuUsage();
  const figures: ProcessFigure[] = [
    {
      name: "process_cpu_seconds_total",
      type: "counter",
      help: "User and system CPU time spent in seconds.",
      value: (cpu.user + cpu.system) / 1e6,
    },
    {
      name: "process_resident_memory_bytes",
      type: "gauge",
      help: "Resident memory size in bytes.",
      value: Deno.memoryUsage().rss,
    },
    {
      name: "process_start_time_seconds",
      type: "gauge",
      help: "Start time of the process since unix epoch in seconds.",
      value: performance.timeOrigin / 1000,
    },
  ];
  if (Deno.build.os === "linux") figures.push(...linuxFigures());
  return figures;
}

/** Virtual memory and file descriptors from `/proc/self`; whatever cannot be read is left out. */
function linuxFigures(): ProcessFigure[] {
  const figures: ProcessFigure[] = [];
  const vsize = readOr(() => {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    // The command name (field 2) may hold spaces and parentheses: count from the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Field 23 (vsize) is the 21st after the name.
    return Number(fields[20]);
  });
  if (vsize !== null && Number.isFinite(vsize)) {
    figures.push({
      name: "process_virtual_memory_bytes",
      type: "gauge",
      help: "Virtual memory size in bytes.",
      value: vsize,
    });
  }
  const open = readOr(() => [...Deno.readDirSync("/proc/self/fd")].length);
  if (open !== null) {
    figures.push({
      name: "process_open_fds",
      type: "gauge",
      help: "Number of open file descriptors.",
      value: open,
    });
  }
  const max = readOr(() => {
    const line = Deno.readTextFileSync("/proc/self/limits").split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    return soft === undefined || !/^\d+$/.test(soft) ? null : Number(soft);
  });
  if (max !== null) {
    figures.push({
      name: "process_max_fds",
      type: "gauge",
      help: "Maximum number of open file descriptors.",
      value: max,
    });
  }
  return figures;
}

function readOr<T>(read: () => T | null): T | null {
  try {
    return read();
  } catch {
    return null;
  }
}
