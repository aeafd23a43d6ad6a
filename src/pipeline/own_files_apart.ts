/**
 * The daemon's own files in a watch folder: a `state_dir` or `log_file`
 * inside a job's watch folder, where its patterns would pick up the ledger,
 * the lock and PID files, the reports or the log, refused before the start
 * (see `start_checks.ts`). Each would be sent while the daemon writes it: a
 * torn copy of the ledger, a log that changes with every line it logs (so
 * `run --once` never ends).
 *
 * @module
 */
import { join } from "node:path";
import { keyPlace } from "../config/key_lines.ts";
import type { Config } from "../config/types.ts";
import { INFO_FILE, LOCK_FILE, PID_FILE } from "../ledger/daemon_lock.ts";
import { LEDGER_FILE } from "../ledger/ledger_check.ts";
import { relativeTo } from "../layout/watch_folder_paths.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import type { RealPath } from "./start_checks.ts";
import { excluding, literalGlob } from "./destinations_apart.ts";

/** Names of files the daemon writes in its `state_dir` (a report's name is an example). */
const STATE_FILES = [
  LEDGER_FILE,
  `${LEDGER_FILE}-wal`,
  `${LEDGER_FILE}-shm`,
  LOCK_FILE,
  `${LOCK_FILE}-journal`,
  PID_FILE,
  INFO_FILE,
  "reports/default-20260101T000000Z.json",
];

/**
 * One line per job whose watch folder holds the daemon's own files where its
 * patterns would send them, with the key's line and what to do.
 */
export function ownFilesWatched(config: Config, realPathSoFar: RealPath): string[] {
  const own: Array<{ key: "state_dir" | "log_file"; path: string; files: string[] }> = [{
    key: "state_dir",
    path: config.state_dir,
    files: STATE_FILES.map((name) => join(realPathSoFar(config.state_dir), name)),
  }];
  if (config.log_file !== "") {
    const log = realPathSoFar(config.log_file);
    own.push({ key: "log_file", path: config.log_file, files: [log, `${log}.1`] });
  }
  const problems: string[] = [];
  for (const job of config.jobs) {
    const watch = realPathSoFar(job.watch_path);
    const filter = createFileFilter(job, { skipLog: null });
    for (const { key, path, files } of own) {
      const sent = files.flatMap((file) => {
        const rel = relativeTo(watch, file);
        return rel !== null && rel !== "" && filter.nameSkip(rel) === null ? [rel] : [];
      });
      if (sent.length === 0) continue;
      const folder = relativeTo(watch, realPathSoFar(path));
      const glob = literalGlob(folder ?? "");
      const leaveOut = folder === null || (key === "state_dir" && folder === "")
        ? "" // Not known where it is in the watch folder, or the watch folder itself: no pattern.
        : key === "state_dir"
        ? `${glob}/`
        : `${glob}*`;
      problems.push(
        `${keyPlace(config.file, -1, [key])}: ${key}: ${path} is inside the watch folder ` +
          `${watch} of job ${job.name}, whose file_patterns match the files image-transfer ` +
          `writes there (${sent.slice(0, 3).join(", ")}${
            sent.length > 3 ? ", \u2026" : ""
          }), so each would be sent while it is written; ` +
          `choose a ${key === "state_dir" ? "folder" : "file"} outside the watch folder` +
          (leaveOut === "" ? "" : ` (or leave it out with ${excluding(leaveOut)})`),
      );
    }
  }
  return problems;
}
