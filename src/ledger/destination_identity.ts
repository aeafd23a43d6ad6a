/**
 * The destination's identity: where a job's files go, as one string, part of each ledger row's key
 * (`target`). Two jobs, or two runs, with the same identity send to the same files. scp and rsync
 * both write over SSH to the same account and folder, so they share one identity (`ssh://`), and a
 * port left empty is the default port (22 for SSH, 21 for FTP): switching `transfer_method` between
 * scp and rsync, or writing the default port out, sends nothing again. FTP and local copies keep
 * identities of their own (another server, another file system). The base path is the folder as
 * `config/destination_folder.ts` spells it, one spelling for every way of writing one folder
 * (`/data`, `/data/`, `/data//`, `/data/.`): editing the spelling sends nothing again, and rows
 * an older version recorded under another spelling are taken over at start
 * (`destination_spellings.ts`).
 *
 * Ledgers of schema version 3 and before named the method (`scp://obs@h:22/data`,
 * `rsync://obs@h/data`): {@linkcode mergeSshIdentities} is the step to version 4 that renames
 * them, merging the rows of a job that sent the same file by both methods.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { destinationFolder } from "../config/destination_folder.ts";
import type { JobConfig } from "../config/types.ts";

/**
 * Where a job's files go, as one string: `ssh` (scp and rsync), `ftp` or `local`, user, host,
 * port (left out when it is the default one) and base path (`local:/data`,
 * `ssh://obs@freya/data`, `ftp://obs@nas:2121/data`).
 */
export function destinationIdentity(job: JobConfig): string {
  return `${destinationServer(job)}${destinationFolder(job)}`;
}

/**
 * The part of {@linkcode destinationIdentity} before the base path: `local:`, or the method,
 * user, host and port (`ssh://obs@freya`, `ftp://obs@nas:2121`).
 */
export function destinationServer(job: JobConfig): string {
  if (job.transfer_method === "local") return "local:";
  const ftp = job.transfer_method === "ftp";
  const port = ftp ? job.ftp_port : job.ssh_port;
  const shown = port === null || port === undefined || port === (ftp ? 21 : 22) ? "" : `:${port}`;
  const user = job.remote_user.trim();
  return `${ftp ? "ftp" : "ssh"}://${user === "" ? "" : `${user}@`}${job.remote_host.trim()}` +
    `${shown}`;
}

/**
 * The identity that `target`, written by schema version 3 or before (`scp://`, `rsync://` or
 * `ftp://`, with the port when one was set), has now. The port is read where the first `/` ends
 * the host: at the end of a host that names no default port with it (an IPv6 address ending in
 * `::22`), or a relative base path with no `/`, it stays.
 */
export function identityFromVersion3(target: string): string {
  const found = /^(scp|rsync|ftp):\/\/(.*)$/s.exec(target);
  if (found === null) return target;
  const [scheme, port] = found[1] === "ftp" ? ["ftp", ":21"] : ["ssh", ":22"];
  const rest = found[2];
  const slash = rest.indexOf("/");
  const host = slash < 0 ? rest : rest.slice(0, slash);
  const cut = host.length - port.length;
  const defaultPort = host.endsWith(port) && cut > 0 && host[cut - 1] !== ":" &&
    host[cut - 1] !== "@";
  return `${scheme}://${defaultPort ? host.slice(0, cut) + rest.slice(host.length) : rest}`;
}

/** Key prefix of the job names recorded per destination and watch folder (`job_names.ts`). */
const NAMES = "job_names\n";

/**
 * Ledger schema step 3 to 4, inside the migration's transaction: every row's `target` becomes its
 * identity now ({@linkcode identityFromVersion3}). Where one job has a row of the same file under
 * two old identities that are one now (it sent by scp, then by rsync), one row stays: a done row
 * over one that is not, else the one written last. The job names recorded per destination are
 * merged the same way. Reads and writes `files` and `ledger_meta` by their plain names (a reader
 * runs it on temporary copies); `file_counts` follows by its triggers, where there are any.
 */
export function mergeSshIdentities(db: DatabaseSync): void {
  const pairs = db.prepare("SELECT DISTINCT job, target FROM files").all() as Array<
    { job: string; target: string }
  >;
  const prepare = (sql: string) => db.prepare(sql);
  for (const { job, target } of pairs) {
    const now = identityFromVersion3(target);
    if (now !== target) moveRows(prepare, job, target, now, false);
  }
  const keys = db.prepare("SELECT key FROM ledger_meta WHERE substr(key, 1, 10) = ?")
    .all(NAMES) as Array<{ key: string }>;
  const targets = new Set(keys.map(({ key }) => key.slice(NAMES.length).split("\n")[0]));
  for (const target of targets) {
    const now = identityFromVersion3(target);
    if (now !== target) moveNames(prepare, target, now);
  }
}

/**
 * Inside the caller's transaction: the rows of `job` recorded for the destination `from` are
 * recorded for `to`, one row per file: where both hold one, a done row over one that is not, else
 * the one written last (`hooks`: the hooks owed and the copies in place unconfirmed move too, one
 * per file). @returns how many rows
 * moved
 */
export function moveRows(
  prepare: (sql: string) => StatementSync,
  job: string,
  from: string,
  to: string,
  hooks: boolean,
): number {
  prepare(`
    DELETE FROM files WHERE job = ?1 AND target = ?3 AND rel_path IN (
      SELECT n.rel_path FROM files n JOIN files o
        ON o.job = n.job AND o.target = ?2 AND o.rel_path = n.rel_path
      WHERE n.job = ?1 AND n.target = ?3 AND ((o.state = 'done') > (n.state = 'done') OR
        ((o.state = 'done') = (n.state = 'done') AND o.updated_at > n.updated_at)))`)
    .run(job, from, to);
  prepare(`
    DELETE FROM files WHERE job = ?1 AND target = ?2 AND rel_path IN (
      SELECT rel_path FROM files WHERE job = ?1 AND target = ?3)`).run(job, from, to);
  const moved = prepare("UPDATE files SET target = ?3 WHERE job = ?1 AND target = ?2")
    .run(job, from, to).changes;
  if (hooks) {
    // The hooks still owed, and the copies in place unconfirmed (`unconfirmed_copies.ts`), go too.
    for (const table of ["hooks_due", "copies_unconfirmed"]) {
      prepare(`UPDATE OR IGNORE ${table} SET target = ?3 WHERE job = ?1 AND target = ?2`)
        .run(job, from, to);
      prepare(`DELETE FROM ${table} WHERE job = ?1 AND target = ?2`).run(job, from);
    }
  }
  return Number(moved);
}

/**
 * Inside the caller's transaction: the job names recorded for the destination `from`, per watch
 * folder (`job_names.ts`), are recorded for `to`, with those recorded there.
 */
export function moveNames(prepare: (sql: string) => StatementSync, from: string, to: string): void {
  const prefix = `${NAMES}${from}\n`;
  const keys = prepare("SELECT key, value FROM ledger_meta WHERE substr(key, 1, ?) = ?")
    .all(prefix.length, prefix) as Array<{ key: string; value: string }>;
  const read = prepare("SELECT value FROM ledger_meta WHERE key = ?");
  const write = prepare(
    "INSERT INTO ledger_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
  );
  const drop = prepare("DELETE FROM ledger_meta WHERE key = ?");
  for (const { key, value } of keys) {
    const newKey = `${NAMES}${to}\n${key.slice(prefix.length)}`;
    const there = (read.get(newKey) as { value: string } | undefined)?.value;
    const names = [...new Set([...namesIn(there), ...namesIn(value)])];
    drop.run(key);
    write.run(newKey, JSON.stringify(names));
  }
}

/** The names in a recorded JSON list (none when it is not one). */
function namesIn(value: string | undefined): string[] {
  try {
    const names: unknown = JSON.parse(value ?? "[]");
    return Array.isArray(names) ? names.filter((name) => typeof name === "string") : [];
  } catch {
    return [];
  }
}
