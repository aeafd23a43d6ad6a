/**
 * Prometheus metrics in the text exposition format (version 0.0.4), written
 * by hand: the process figures every Prometheus client shows (resident
 * memory, CPU seconds, start time, and on Linux open file descriptors), then counters, gauges and one histogram
 * labelled by job and transfer method. Counters count from the daemon's
 * start, as Prometheus expects (it handles restarts); failures are shown for
 * every error class from 0, so a rate over them exists before the first
 * failure. A failed attempt is a file the transport tried that did not arrive
 * (a paused job's probe too: it tries one file); a file refused unsent for want
 * of room at the destination is none. Probes are counted on their own as well.
 *
 * @module
 */
import { TRANSFER_ERROR_KINDS } from "../errors.ts";
import { JOB_STATES, type JobSnapshot } from "./job_status.ts";
import { type JobExtra, type JobLabels, renamedLabels, type TransferEvent } from "./events.ts";
import process from "node:process";

/** Upper bounds (seconds) of the transfer duration histogram. */
export const DURATION_BUCKETS_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

interface JobCounters {
  files: number;
  bytes: number;
  failures: Map<string, number>;
  /** Batches a paused job sent to see whether its destination takes files again. */
  probes: number;
  /** Hooks, schedule actions and clean-ups that failed (each logged). */
  extras: Record<JobExtra, number>;
  /** Cumulative counts per bucket, then +Inf. */
  buckets: number[];
  durationSum: number;
  durationCount: number;
}

/** Counts what the pipeline reports and renders `/metrics`. */
export class Metrics {
  #jobs = new Map<string, JobCounters>();

  /** Count one pipeline event. */
  record(event: TransferEvent): void {
    if (event.type === "renamed") {
      // A job a reload renamed goes on counting under its name now, as its figures in
      // `/api/status` do: its series under the name it had end.
      const same = (a: JobLabels, b: JobLabels) => a.job === b.job && a.method === b.method;
      const moved = new Map<string, JobCounters>();
      for (const [key, c] of this.#jobs) {
        const [job, method] = key.split("\0");
        const to = renamedLabels({ job, method }, event.renamed, same);
        if (to) moved.set(`${to.job}\0${to.method}`, c);
      }
      this.#jobs = moved;
      return;
    }
    if (event.type === "extraFailed") {
      this.#counters(event.job, event.method).extras[event.extra]++;
      return;
    }
    if (event.type !== "sent" && event.type !== "failed" && event.type !== "started") return;
    const c = this.#counters(event.job, event.method);
    if (event.type === "started") {
      if (event.probe) c.probes++;
      return;
    }
    if (event.type === "failed") {
      if (!event.attempted) return; // Refused unsent (no room): nothing was tried.
      c.failures.set(event.errorClass, (c.failures.get(event.errorClass) ?? 0) + 1);
      return;
    }
    c.files++;
    c.bytes += event.bytes;
    const seconds = event.durationMs / 1000;
    DURATION_BUCKETS_SECONDS.forEach((bound, i) => {
      if (seconds <= bound) c.buckets[i]++;
    });
    c.buckets[DURATION_BUCKETS_SECONDS.length]++;
    c.durationSum += seconds;
    c.durationCount++;
  }

  /**
   * The exposition text.
   *
   * @param jobs the running jobs (queue depth, state)
   * @param build version facts for `image_transfer_build_info`
   * @param startedAt when the daemon started (ms since epoch)
   * @param now the time the waiting files' age is measured at (ms since epoch)
   * @param openFds open file descriptors (see `process/open_fds.ts`); not shown when `null`
   * @param reloadRefused whether the last reload was refused
   * @param logLinesLost log lines the log file could not take since the daemon started
   */
  render(
    jobs: JobSnapshot[],
    build: { version: string; commit: string; deno: string },
    startedAt: number,
    now: number = Date.now(),
    openFds: number | null = null,
    reloadRefused = false,
    logLinesLost = 0,
  ): string {
    for (const job of jobs) this.#counters(job.job, job.method);
    const out: string[] = [];
    const family = (name: string, type: string, help: string) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    /** A family with one sample per job (labels job and method). */
    const perJob = (
      name: string,
      type: string,
      help: string,
      value: (job: JobSnapshot) => number,
    ) => {
      family(name, type, help);
      for (const job of jobs) {
        out.push(sample(name, { job: job.job, method: job.method }, value(job)));
      }
    };
    // Only the running jobs' series: a job removed by a reload leaves none behind (its counts
    // are kept, and shown again should it come back); one renamed goes on under its new name.
    const running = new Set(jobs.map((job) => `${job.job}\0${job.method}`));
    const entries = [...this.#jobs.entries()].filter(([key]) => running.has(key)).map(
      ([key, c]) => {
        const [job, method] = key.split("\0");
        return { labels: { job, method }, c };
      },
    );

    // Virtual memory is not shown: Deno lets only a program with every permission read
    // /proc/self, and the daemon runs with fewer.
    const cpu = process.cpuUsage();
    family("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
    out.push(sample("process_cpu_seconds_total", {}, (cpu.user + cpu.system) / 1e6));
    family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    out.push(sample("process_resident_memory_bytes", {}, Deno.memoryUsage().rss));
    family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch.");
    out.push(sample("process_start_time_seconds", {}, performance.timeOrigin / 1000));
    if (openFds !== null) {
      family("process_open_fds", "gauge", "Number of open file descriptors.");
      out.push(sample("process_open_fds", {}, openFds));
    }
    family("image_transfer_build_info", "gauge", "Version of the running daemon (always 1).");
    out.push(sample("image_transfer_build_info", build, 1));
    family("image_transfer_start_time_seconds", "gauge", "When the daemon started (Unix time).");
    out.push(sample("image_transfer_start_time_seconds", {}, startedAt / 1000));
    const reload = "image_transfer_config_last_reload_successful";
    family(
      reload,
      "gauge",
      "0 when the last reload was refused (the daemon runs with the config it had), else 1.",
    );
    out.push(sample(reload, {}, reloadRefused ? 0 : 1));
    const lost = "image_transfer_log_lines_lost_total";
    family(
      lost,
      "counter",
      "Log lines the log file could not take (a full disk); stderr had them.",
    );
    out.push(sample(lost, {}, logLinesLost));

    family("image_transfer_files_transferred_total", "counter", "Files that arrived verified.");
    for (const { labels, c } of entries) {
      out.push(sample("image_transfer_files_transferred_total", labels, c.files));
    }
    family("image_transfer_bytes_transferred_total", "counter", "Bytes of the files that arrived.");
    for (const { labels, c } of entries) {
      out.push(sample("image_transfer_bytes_transferred_total", labels, c.bytes));
    }
    family("image_transfer_failures_total", "counter", "Failed attempts by error class.");
    for (const { labels, c } of entries) {
      for (const errorClass of new Set([...TRANSFER_ERROR_KINDS, ...c.failures.keys()])) {
        const n = c.failures.get(errorClass) ?? 0;
        out.push(
          sample("image_transfer_failures_total", { ...labels, error_class: errorClass }, n),
        );
      }
    }
    const probes = "image_transfer_probes_total";
    family(
      probes,
      "counter",
      "Probes of a paused job (its destination full or not reachable): one file sent, or refused unsent where the room measured is too small, to see whether the destination takes files again.",
    );
    for (const { labels, c } of entries) out.push(sample(probes, labels, c.probes));
    const state = "image_transfer_job_state";
    family(state, "gauge", "1 for the state the job is in, 0 for the others.");
    for (const job of jobs) {
      for (const s of JOB_STATES) {
        out.push(
          sample(state, { job: job.job, method: job.method, state: s }, s === job.state ? 1 : 0),
        );
      }
    }
    // Each file not arrived yet counts once, as the job's snapshot counts it: a failing file
    // (fast retries used up) in `image_transfer_files_failed` only, whatever it does meanwhile.
    perJob(
      "image_transfer_files_waiting",
      "gauge",
      "Files found complete that have not arrived yet (failing ones apart).",
      ({ queue: q }) => q.planning + q.queued + q.waiting + q.sending + q.unrecorded,
    );
    perJob(
      "image_transfer_oldest_waiting_file_age_seconds",
      "gauge",
      "How long the longest-waiting file has waited (0 when none waits).",
      ({ oldestWaitingSince: since }) => since === null ? 0 : Math.max(0, (now - since) / 1000),
    );
    family("image_transfer_queue_files", "gauge", "Files in motion by state.");
    for (const job of jobs) {
      const labels = { job: job.job, method: job.method };
      for (const [state, n] of Object.entries(job.queue)) {
        out.push(sample("image_transfer_queue_files", { ...labels, state }, n));
      }
    }
    perJob(
      "image_transfer_files_failed",
      "gauge",
      "Files that used up their fast retries and have not arrived yet.",
      (job) => job.queue.failed,
    );
    perJob(
      "image_transfer_files_unreadable",
      "gauge",
      "Files not complete yet that cannot be looked at now: their stat fails otherwise than not found (an I/O error on a share, a folder's permissions). Kept, looked at again and sent once they can be read; the log says why.",
      (job) => job.unreadable,
    );
    // The daemon's skip log counts these by job name, reloads included: a job back goes on.
    perJob(
      "image_transfer_cannot_send_total",
      "counter",
      "Files and folders found that cannot be sent: a name that is not UTF-8, a name with a line break (FTP), a folder that cannot be read (each said once; `status` lists them).",
      (job) => job.cannotSend,
    );
    // Counted here, not taken from the job's snapshot: a job removed by a reload that comes back
    // goes on from its counts, where the snapshot (the page) counts from 0.
    const extras: Array<[JobExtra, string]> = [
      ["hook", "Hooks that failed, timed out or could not run (each is logged)."],
      [
        "schedule",
        "Schedule actions (command, report, rescan) that failed or could not run (each is logged).",
      ],
      [
        "cleanup",
        "Sources after_transfer could not delete or move into the archive (each is logged).",
      ],
    ];
    for (const [extra, help] of extras) {
      const name = `image_transfer_${extra}_failures_total`;
      family(name, "counter", help);
      for (const { labels, c } of entries) out.push(sample(name, labels, c.extras[extra]));
    }
    family(
      "image_transfer_job_paused",
      "gauge",
      "1 while the job is paused: by hand, by a schedule's transfer window, or by its destination (full, cannot be reached, or takes no file: one file is tried at a time until one arrives), as status says; why: image_transfer_job_state.",
    );
    for (const job of jobs) {
      // What `status` says paused: the job's state, or the destination pause whatever the state
      // says of the last failure (a probe that failed otherwise, a host back up that refuses).
      const paused = job.state === "paused" || job.state === "full" || job.held ? 1 : 0;
      out.push(sample("image_transfer_job_paused", { job: job.job, method: job.method }, paused));
    }
    family(
      "image_transfer_last_success_timestamp_seconds",
      "gauge",
      "When a file last arrived (Unix time).",
    );
    for (const job of jobs) {
      if (job.lastSuccessAt === null) continue;
      const labels = { job: job.job, method: job.method };
      out.push(
        sample("image_transfer_last_success_timestamp_seconds", labels, job.lastSuccessAt / 1000),
      );
    }
    const free = "image_transfer_destination_free_bytes";
    family(
      free,
      "gauge",
      "Free space at the destination (local, scp, rsync; asked once a minute).",
    );
    for (const job of jobs) {
      if (job.freeSpace === null) continue;
      out.push(sample(free, { job: job.job, method: job.method }, job.freeSpace.bytes));
    }
    const hist = "image_transfer_transfer_duration_seconds";
    family(hist, "histogram", "Time from the start of a file's batch until it arrived.");
    for (const { labels, c } of entries) {
      DURATION_BUCKETS_SECONDS.forEach((bound, i) => {
        out.push(sample(`${hist}_bucket`, { ...labels, le: String(bound) }, c.buckets[i]));
      });
      const inf = c.buckets[DURATION_BUCKETS_SECONDS.length];
      out.push(sample(`${hist}_bucket`, { ...labels, le: "+Inf" }, inf));
      out.push(sample(`${hist}_sum`, labels, c.durationSum));
      out.push(sample(`${hist}_count`, labels, c.durationCount));
    }
    return out.join("\n") + "\n";
  }

  #counters(job: string, method: string): JobCounters {
    const key = `${job}\0${method}`;
    let c = this.#jobs.get(key);
    if (!c) {
      c = {
        files: 0,
        bytes: 0,
        failures: new Map(),
        probes: 0,
        extras: { hook: 0, schedule: 0, cleanup: 0 },
        buckets: new Array(DURATION_BUCKETS_SECONDS.length + 1).fill(0),
        durationSum: 0,
        durationCount: 0,
      };
      this.#jobs.set(key, c);
    }
    return c;
  }
}

/** One sample line; label values escaped as the format asks (`\`, `"`, newline). */
function sample(name: string, labels: Record<string, string>, value: number): string {
  const pairs = Object.entries(labels).map(([k, v]) =>
    `${k}="${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`
  );
  return `${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${value}`;
}
