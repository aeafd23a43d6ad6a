/**
 * A destination folder spelled another way keeps what was sent to it. Versions before this one
 * recorded a destination's identity with `remote_base_path` as written, so `/data`, `/data/` and
 * `/data//` were three destinations, and a base path edited to another spelling sent the whole
 * watch folder again into the same folder. The identity spells the folder one way now
 * (`destination_identity.ts`); before the jobs start, the rows recorded for another spelling of a
 * job's destination are recorded for the identity it has now, with the hooks they owe and the
 * job names recorded for it (`job_names.ts`), for every job name that sent there.
 *
 * The ledger's destinations are read with one index seek each (not its files), and each spelling
 * taken over costs a few statements, whatever the number of files. Where one job has a row of the
 * same file under two spellings, one row stays: a done row over one that is not, else the one
 * written last. Until a start has taken them over, the commands that only read the ledger read the
 * rows of another spelling ({@linkcode ledgerTarget}).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import {
  destinationIdentity,
  destinationServer,
  moveNames,
  moveRows,
} from "./destination_identity.ts";
import { FileRows } from "./file_rows.ts";
import { ledgerName } from "./job_names.ts";
import { type Ledger, LedgerWriteError } from "./ledger.ts";

/** Rows of one job name recorded under another spelling of a destination, now under its own. */
export interface RespelledRows {
  /** The job name the rows are of. */
  job: string;
  /** The identity they were recorded under. */
  from: string;
  /** The identity they are recorded under now. */
  to: string;
  /** How many rows moved. */
  rows: number;
}

/** Every job name and destination the ledger has rows for, one index seek each. */
function recordedDestinations(ledger: Ledger): Array<{ job: string; target: string }> {
  return ledger.read(() => {
    const next = ledger.statement(
      "SELECT job, target FROM files WHERE (job, target) > (?, ?) ORDER BY job, target LIMIT 1",
    );
    const found: Array<{ job: string; target: string }> = [];
    let at = ledger.statement("SELECT job, target FROM files ORDER BY job, target LIMIT 1")
      .get() as { job: string; target: string } | undefined;
    while (at !== undefined) {
      found.push({ job: at.job, target: at.target });
      at = next.get(at.job, at.target) as { job: string; target: string } | undefined;
    }
    return found;
  });
}

/**
 * The identity `target` would be for `job` spelled as it is now: `target` with the server part of
 * `job`'s identity, and its base path spelled the way the identity spells it; `null` when `target`
 * is not on `job`'s server (or names no base path).
 */
export function respelled(job: JobConfig, target: string): string | null {
  const server = destinationServer(job);
  if (!target.startsWith(server) || target.length === server.length) return null;
  return destinationIdentity({ ...job, remote_base_path: target.slice(server.length) });
}

/**
 * Before `jobs` start: the rows recorded for another spelling of a job's destination (by any job
 * name) are recorded for the job's identity, in one transaction. A ledger that cannot be written
 * changes nothing (the next start does it).
 *
 * @returns what moved, per job name and former spelling
 */
export function carryOverSpellings(ledger: Ledger, jobs: readonly JobConfig[]): RespelledRows[] {
  const identities = new Set(jobs.map(destinationIdentity));
  const moves: Array<{ job: string; from: string; to: string }> = [];
  for (const { job, target } of recordedDestinations(ledger)) {
    if (target === "" || identities.has(target)) continue;
    const to = jobs.map((config) => respelled(config, target))
      .find((identity) => identity !== null && identities.has(identity));
    if (to) moves.push({ job, from: target, to });
  }
  if (moves.length === 0) return [];
  try {
    return ledger.write(() => {
      const prepare = (sql: string) => ledger.statement(sql);
      const moved = moves.map((move) => ({
        ...move,
        rows: moveRows(prepare, move.job, move.from, move.to, true),
      }));
      for (const from of new Set(moves.map((move) => move.from))) {
        moveNames(prepare, from, moves.find((move) => move.from === from)!.to);
      }
      return moved;
    });
  } catch (error) {
    if (error instanceof LedgerWriteError) return [];
    throw error;
  }
}

/**
 * The identity whose rows `job` (named `name` in the ledger) has before the next start takes over
 * the other spellings ({@linkcode carryOverSpellings}): its identity where it has rows there, else
 * another spelling of it that has rows (the base path as written, as versions before this one
 * recorded it, where it has), else its identity. For `status`, `run --dry-run` and `resend`, which
 * read the ledger as the run will find it (with rows under two other spellings, one of them).
 */
export function ledgerTarget(ledger: Ledger, job: JobConfig, name: string): string {
  const target = destinationIdentity(job);
  const has = ledger.read(() =>
    ledger.statement("SELECT 1 FROM files WHERE job = ? AND target = ? LIMIT 1").get(name, target)
  );
  if (has !== undefined) return target;
  const others = recordedDestinations(ledger)
    .filter((d) => d.job === name && d.target !== "" && respelled(job, d.target) === target)
    .map((d) => d.target);
  const written = `${destinationServer(job)}${job.remote_base_path}`;
  return others.includes(written) ? written : others[0] ?? target;
}

/**
 * The rows of `job` (one of `jobs`) as the next start finds them, changing nothing: under the
 * name it takes over ({@linkcode ledgerName}) and the spelling it has them under
 * ({@linkcode ledgerTarget}). For the commands that only read the ledger.
 */
export function rowsAsStartFinds(ledger: Ledger, job: JobConfig, jobs: readonly JobConfig[]) {
  const name = ledgerName(ledger, job, jobs);
  return new FileRows(ledger, name, ledgerTarget(ledger, job, name));
}
