/**
 * The copies a job put in place at the destination that its server did not
 * confirm on disk (`remote_sync`: the flush after the renames failed), in the
 * ledger's `copies_unconfirmed` table. Such a file is not arrived: it is sent
 * again, and that copy of its own is replaced, never kept as another's file.
 * A running transport knows this by itself; the table keeps it over a stop, so
 * the next run looks at the copy first (`pipeline/destination_look.ts`): one
 * with the source's bytes, once flushed, is its arrival; any other is replaced.
 * A file's entry goes with its arrival or its row (the ledger's triggers).
 *
 * @module
 */
import type { FileRows } from "./file_rows.ts";

/** The unconfirmed copies of one job and destination; see the module doc. */
export class UnconfirmedCopies {
  constructor(readonly rows: Pick<FileRows, "ledger" | "job" | "target">) {}

  /** Record that the copies of `relPaths` are in place, not confirmed on disk. */
  add(relPaths: readonly string[]): void {
    if (relPaths.length === 0) return;
    const { ledger, job, target } = this.rows;
    ledger.write(() => {
      const stmt = ledger.statement(
        "INSERT OR IGNORE INTO copies_unconfirmed (job, target, rel_path) VALUES (?, ?, ?)",
      );
      for (const relPath of relPaths) stmt.run(job, target, relPath);
    });
  }

  /** The files (relative paths) whose copy is in place, not confirmed on disk. */
  all(): string[] {
    const { ledger, job, target } = this.rows;
    return ledger.statement(
      "SELECT rel_path FROM copies_unconfirmed WHERE job = ? AND target = ?",
    ).all(job, target).map((row) => String((row as { rel_path: string }).rel_path));
  }
}
