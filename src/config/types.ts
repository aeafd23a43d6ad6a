/**
 * The validated, resolved configuration the rest of the program works with:
 * defaults applied, `~` expanded, `verify_transfer` normalised.
 *
 * @module
 */
import type { JobInput } from "./schema.ts";

/** How an arrival is checked. */
export type VerifyMode = "none" | "size" | "checksum";

/** One transfer job, ready to run. Paths are absolute (`~` expanded). */
export interface JobConfig
  extends Omit<JobInput, "name" | "verify_transfer" | "max_concurrent_transfers"> {
  /** Unique job name (`default` for a single top-level job). */
  name: string;
  verify_transfer: VerifyMode;
  /** Transfers at once: as set, else 4 (2 for ftp). */
  max_concurrent_transfers: number;
}

/** The whole configuration. */
export interface Config {
  /** Absolute path of the file this was loaded from. */
  file: string;
  /** Folder of the ledger database. */
  state_dir: string;
  /** Rotating log file, or `""` for none. */
  log_file: string;
  log_format: "text" | "json";
  /** Address of the status page (`HOST:PORT`), or `""` for none. */
  status_listen: string;
  /** File holding the status page's token (absolute), or `null`. */
  status_token_file: string | null;
  /** PEM certificate of the status page's HTTPS (absolute), or `null` for plain HTTP. */
  status_tls_cert: string | null;
  /** PEM private key of `status_tls_cert` (absolute), or `null`. */
  status_tls_key: string | null;
  jobs: JobConfig[];
}

/** The `file` of a config made from `run --watch ... --to ...`: there is no file to read again. */
export const COMMAND_LINE_CONFIG = "(command line)";
