/**
 * The documentation attached to each key of the configuration schema
 * (`schema.ts`): its one-line description, and an example or a written
 * default, as `init`'s template, the README and messages show them.
 *
 * Other forms of keys the loader accepts besides those of the schema
 * (`schema.ts`): a single text value for a list, and names of keys renamed
 * since earlier versions.
 *
 * @module
 */
import type { z } from "zod";

/** How a key is documented in `init`'s template, the README and messages. */
export interface KeyMeta {
  /** One line on what the key does. */
  description: string;
  /** For a key a new config must fill in: a value to show. */
  example?: unknown;
  /** For a default computed when the config loads: that default as a user writes it. */
  writtenDefault?: string | number;
}

/** Attach the description (and example or written default) of a key. */
export function doc<T extends z.ZodType>(
  schema: T,
  description: string,
  more: Omit<KeyMeta, "description"> = {},
): T {
  return schema.meta({ description, ...more });
}

/** The documentation of `schema` (see {@linkcode doc}). */
export function keyMeta(schema: z.ZodType): KeyMeta {
  return { description: "", ...(schema.meta() as Partial<KeyMeta> | undefined) };
}

/** List keys where a single text value is accepted as a one-element list. */
export const SINGLE_STRING_LISTS: ReadonlySet<string> = new Set([
  "file_patterns",
  "exclude_patterns",
  "close_shortcut_patterns",
  "growing_patterns",
]);

/**
 * Keys renamed since earlier versions (old name: current name). A config
 * written with an old name loads unchanged; giving both is an error.
 */
export const OLD_KEY_NAMES: ReadonlyMap<string, string> = new Map([
  ["retry_delay", "retry_delay_seconds"],
]);

/**
 * Keys of the tools this one replaces that it does not read (the sync tool's sections, job keys,
 * watcher and daemon settings), each with what to write instead: unknown, they are answered with
 * that rather than with the nearest key by spelling (`max_concurrent_syncs` is not
 * `max_concurrent_hooks`, `sync_options` not `rsync_options`, `schedule` not `schedules`), or
 * with the advice for an unknown mapping (an anchor's `x-` key: `daemon` is no such thing).
 */
export const OTHER_TOOLS_KEYS: ReadonlyMap<string, string> = new Map([
  ["source_path", 'did you mean "watch_path"?'],
  ["destination_path", 'did you mean "remote_base_path"?'],
  ["filters", 'did you mean "exclude_patterns"? (the files never sent)'],
  ["max_concurrent_syncs", 'did you mean "max_concurrent_transfers"?'],
  ["id", 'did you mean "name"?'],
  ["debounce_ms", 'did you mean "stability_window_seconds"? (in seconds)'],
  ["recursive", "watch_path is always watched with all its subfolders; leave it out"],
  ["enabled", "a job runs while its entry is in the file; comment the entry out to stop it"],
  ["log_level", "the log level is a command-line option (--log-level, -v); leave it out"],
  ["pid_file", "the PID file is daemon.pid in state_dir; leave it out"],
  // The sync tool's sections (its TOML tables, or YAML mappings when converted).
  [
    "sync_jobs",
    'did you mean "jobs"? (in each entry, source_path is watch_path and destination_path ' +
    "remote_base_path)",
  ],
  [
    "file_watchers",
    "each job watches its own watch_path, with all its subfolders; leave it out (a watcher's " +
    "debounce_ms is stability_window_seconds, in seconds)",
  ],
  [
    "concurrency",
    'write its max_concurrent_syncs as "max_concurrent_transfers" (at the top level for every ' +
    "job, or in a job); the rest is not needed: leave it out",
  ],
  [
    "daemon",
    "write its log_file at the top level of the file; the PID file is daemon.pid in state_dir, " +
    "the log level a command-line option (--log-level, -v), and the config is read again on " +
    "SIGHUP: leave the rest out",
  ],
  ["pocketbase", "the settings are read from this file only, from no server; leave it out"],
  ["cache", "nothing is cached: the settings are read from this file only; leave it out"],
  // The sync tool's job keys, and its watchers' and daemon's keys written in a job or at the top.
  [
    "schedule",
    "each file is sent once it arrives, no schedule needed; to scan the watch folder at set " +
    "times too, write rescan_interval_seconds, or a schedules entry with cron or every_seconds " +
    "and action: rescan",
  ],
  [
    "sync_options",
    "not rsync_options, which are rsync's own arguments: comparison_method is verify_transfer, " +
    "dry_run the run --dry-run option, files to leave out go in exclude_patterns, and files at " +
    "the destination are never deleted; leave the rest out",
  ],
  ["sync_job_id", "each job watches its own watch_path; leave it out"],
  [
    "watch_events",
    "a file is sent once it is created or changed and then stays unchanged for " +
    "stability_window_seconds; a removal or a rename sends nothing; leave it out",
  ],
  ["config_refresh_interval_secs", "the config is read again on SIGHUP; leave it out"],
  ["auto_restart_on_config_change", "the config is read again on SIGHUP; leave it out"],
]);
