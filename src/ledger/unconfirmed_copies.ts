/**
 * The copies a job put in place at the destination that its server did not
 * confirm on disk (`remote_sync`: the flush after the renames failed), in the
 * ledger's `copies_unconfirmed` table. Such a file is not arrived: it is sent
 * again, and that copy of its own is replaced, never kept as another's file.
 * A running transport knows this by itself; the table keeps it over a stop, so
 * the next run looks at the copy first (`pipeline/destination_look.ts`): one
 * with the source's bytes, once flushed, is its arrival; any other is replaced,
 * where the file goes to that same destination (the table keeps where the copy
 * is: one placed beside another file is no claim on the name it was planned for).
 * A file's entry goes with its arrival or its row (the ledger's triggers).
 *
 * An entry without a destination (`''`) is a file whose last attempt was cut off after it may
 * have put its copy in place (the call that renames copies did not answer, the transport's
 * `mayBeInPlace`; or the daemon stopped in the middle of the attempt): whether a copy is there is
 * not known, so the next look counts what it finds only by its SHA-256, and never takes the bytes
 * there for its own to replace, unless they are a copy of the version that attempt sent (its
 * size and mtime, as the file's row keeps them) and the file changed since
 * (`pipeline/destination_look.ts`). It goes once the destination was looked at, so it tells a run
 * started after a crash what the run before knew.
 *
 * @module
 */
import type { FileRows } from "./file_rows.ts";

/** The unconfirmed copies of one job and destination; see the module doc. */
export class UnconfirmedCopies {
  constructor(readonly rows: Pick<FileRows, "ledger" | "job" | "target">) {}

  /** Record that the copies of `copies` (file, and destination its copy is at) are in place there,
   * not confirmed on disk. */
  add(copies: ReadonlyArray<{ relPath: string; destination: string }>): void {
    if (copies.length === 0) return;
    const { ledger, job, target } = this.rows;
    ledger.write(() => {
      const stmt = ledger.statement(
        "INSERT OR REPLACE INTO copies_unconfirmed (job, target, rel_path, destination) " +
          "VALUES (?, ?, ?, ?)",
      );
      for (const copy of copies) stmt.run(job, target, copy.relPath, copy.destination);
    });
  }

  /**
   * Record that the last attempts of `relPaths` may have put their copy in place (see the module
   * doc); a file's entry that says where its copy is stays as it is.
   */
  mayBeInPlace(relPaths: readonly string[]): void {
    if (relPaths.length === 0) return;
    const { ledger, job, target } = this.rows;
    ledger.write(() => {
      const stmt = ledger.statement(
        "INSERT OR IGNORE INTO copies_unconfirmed (job, target, rel_path, destination) " +
          "VALUES (?, ?, ?, '')",
      );
      for (const relPath of relPaths) stmt.run(job, target, relPath);
    });
  }

  /** The destination was looked at for `relPaths`: their entries without a destination go. */
  looked(relPaths: readonly string[]): void {
    if (relPaths.length === 0) return;
    const { ledger, job, target } = this.rows;
    ledger.write(() => {
      const stmt = ledger.statement(
        "DELETE FROM copies_unconfirmed " +
          "WHERE job = ? AND target = ? AND rel_path = ? AND destination = ''",
      );
      for (const relPath of relPaths) stmt.run(job, target, relPath);
    });
  }

  /**
   * The destination of each file's copy in place unconfirmed, by the file's relative path (`''`:
   * its copy may be in place, where is not known; see the module doc).
   */
  all(): Map<string, string> {
    const { ledger, job, target } = this.rows;
    const rows = ledger.statement(
      "SELECT rel_path, destination FROM copies_unconfirmed WHERE job = ? AND target = ?",
    ).all(job, target) as Array<{ rel_path: string; destination: string }>;
    return new Map(rows.map((row) => [String(row.rel_path), String(row.destination)]));
  }
}
