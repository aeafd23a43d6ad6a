/**
 * The `on_transfer` hooks a job still owes, in the ledger's `hooks_due`
 * table: a file's row goes in with the transaction that records the file as
 * arrived, and out as its hook starts. A daemon stopped or killed before then
 * runs the hook at its next start, so no hook is lost (one taken as the daemon
 * stopped, before its program started, is owed again; where the ledger cannot
 * be written then, it runs at once, the stop waiting for it); one cut off while
 * it ran is not run again (its end is in the log), so none runs twice.
 *
 * @module
 */
import type { FileRows } from "./file_rows.ts";
import type { Ledger } from "./ledger.ts";

/** The facts of an arrival whose hook is owed. */
export interface DueHook {
  relPath: string;
  /** Destination relative to the job's base path. */
  destination: string;
  size: number;
  mtimeMs: number;
  /** SHA-256 of what arrived, when the transport hashed it. */
  sha256?: string;
}

/** The hooks owed by one job and destination; see the module doc. */
export class DueHooks {
  constructor(readonly ledger: Ledger, readonly job: string, readonly target: string) {}

  /** The hooks owed to the files of `rows`' job and destination. */
  static of(rows: Pick<FileRows, "ledger" | "job" | "target">): DueHooks {
    return new DueHooks(rows.ledger, rows.job, rows.target);
  }

  /**
   * Record `hooks` as owed (in the caller's transaction when there is one); `again`: hooks taken
   * that did not start, owed again unless another version of the file is owed now.
   */
  add(hooks: readonly DueHook[], again = false): void {
    if (hooks.length === 0) return;
    this.ledger.write(() => {
      const stmt = this.ledger.statement(
        `INSERT OR ${again ? "IGNORE" : "REPLACE"} INTO hooks_due (job, target, rel_path, ` +
          "destination, size, mtime_ms, sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
      );
      for (const h of hooks) {
        stmt.run(
          this.job,
          this.target,
          h.relPath,
          h.destination,
          h.size,
          h.mtimeMs,
          h.sha256 ?? null,
        );
      }
    });
  }

  /**
   * The first `limit` hooks owed (all without), in the order their files arrived (the files of
   * one batch by name); a hook whose file's row is gone comes first.
   */
  list(limit = -1): DueHook[] {
    return this.ledger.read(() =>
      this.ledger.statement(
        "SELECT h.rel_path, h.destination, h.size, h.mtime_ms, h.sha256 FROM hooks_due h " +
          "LEFT JOIN files f ON f.job = h.job AND f.target = h.target AND f.rel_path = h.rel_path " +
          "WHERE h.job = ? AND h.target = ? ORDER BY f.transferred_at, h.rel_path LIMIT ?",
      ).all(this.job, this.target, limit)
    ).map((r) => ({
      relPath: r.rel_path as string,
      destination: r.destination as string,
      size: Number(r.size),
      mtimeMs: Number(r.mtime_ms),
      ...(r.sha256 === null ? {} : { sha256: r.sha256 as string }),
    }));
  }

  /** How many hooks are owed. */
  count(): number {
    const row = this.ledger.read(() =>
      this.ledger.statement("SELECT count(*) AS n FROM hooks_due WHERE job = ? AND target = ?")
        .get(this.job, this.target)
    );
    return Number(row?.n ?? 0);
  }

  /**
   * The hook of this version of the file starts: no longer owed (a later arrival of the file,
   * another version, stays owed). @returns `taken`; `gone` when it was not owed (started
   * already, or another version arrived since); `not now` when the ledger cannot be written now:
   * the hook is still owed, and should wait (run now, it would run again at the next start)
   */
  started(hook: Pick<DueHook, "relPath" | "size" | "mtimeMs">): "taken" | "gone" | "not now" {
    try {
      const result = this.ledger.write(() =>
        this.ledger.statement(
          "DELETE FROM hooks_due WHERE job = ? AND target = ? AND rel_path = ? AND size = ? " +
            "AND mtime_ms = ?",
        ).run(this.job, this.target, hook.relPath, hook.size, hook.mtimeMs)
      );
      return Number(result.changes) > 0 ? "taken" : "gone";
    } catch {
      return "not now"; // Said by the ledger.
    }
  }

  /** Forget every hook owed (the job has no `on_transfer` any more). @returns how many */
  clear(): number {
    const result = this.ledger.write(() =>
      this.ledger.statement("DELETE FROM hooks_due WHERE job = ? AND target = ?")
        .run(this.job, this.target)
    );
    return Number(result.changes);
  }
}
