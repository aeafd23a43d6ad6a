/**
 * `run --dry-run`: list what would be transferred where, and what is skipped
 * and why, changing nothing (the ledger is only read, and only if it exists).
 * A ledger that `run` would take for lost or damaged (see `judgeLedger`) is
 * not read: the listing says so, and says which files `run` would find at
 * their destination with their size and record as sent instead of sending.
 *
 * @module
 */
import { removeAfterCrash } from "../process/crash_cleanup.ts";
import { resolve } from "node:path";
import { COMMAND_LINE_CONFIG, type Config, type JobConfig } from "../config/types.ts";
import { OutcomeError, WatchFolderError } from "../errors.ts";
import { readFitsStructure } from "../layout/fits_structure.ts";
import { freeDestination, nameBesideOther, planDestination } from "../layout/destination.ts";
import { MOST_TRIES_BESIDE } from "../pipeline/batch_items.ts";
import { observationOf, placeBeside } from "../layout/sent_before.ts";
import type { FileRows, LedgerRow } from "../ledger/file_rows.ts";
import { copiesChanged } from "../pipeline/sent_copy.ts";
import { rowsAsStartFinds } from "../ledger/destination_spellings.ts";
import { fromWatchFolder } from "../ledger/job_names.ts";
import { Ledger } from "../ledger/ledger.ts";
import { judgeStateDir, whatRunDoes } from "../ledger/ledger_check.ts";
import { quoteIfUnsafe } from "../log/logging.ts";
import { dueSteps } from "../pipeline/source_cleanup.ts";
import { FolderFileSystem, unlistable } from "../config/file_systems.ts";
import { pausedAt, windowEnd } from "../pipeline/pause_windows.ts";
import { closedOnStop, createTransport, type Transport } from "../transfer/transport.ts";
import { sameFile } from "../transfer/keep_others.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import { readablePath, readableText } from "../watch/readable_names.ts";
import { scanFolder, type SkippedEntry } from "../watch/scan.ts";
import { sameVersion, versionOf } from "../watch/file_version.ts";

/**
 * Print one line per file that would be sent (`would transfer <source> -> <target>`),
 * one per file a new ledger would record as sent (`would record <source> as sent: ...`),
 * one per entry that is skipped (`skipped <path>: <reason>`; a folder that is
 * not entered ends in `/`) and a summary per job to `write`. Control
 * characters in names are escaped, so each file stays on one line.
 *
 * @returns the number of files that would be sent
 * @throws {WatchFolderError} after the listing, when a watch folder does not exist
 * @throws {OutcomeError} after the listing, when a job's destination could not be asked what it
 *   holds (its files listed where they are planned: what `run` does there is not known)
 */
export async function dryRun(config: Config, write: (line: string) => void): Promise<number> {
  // Judged as `run` judges it: a lost or damaged ledger is not read, and files already at their
  // destination are looked for there, as `run` does with the new one.
  const { path, found } = judgeStateDir(config.state_dir);
  const anew = whatRunDoes(path, found);
  if (anew !== null) write(anew);
  const ledger = found.kind === "sound" ? Ledger.open(config.state_dir, { readOnly: true }) : null;
  let total = 0;
  const missing: string[] = [];
  /** The jobs whose destination did not answer, with why (the first reason of each). */
  const unasked: string[] = [];
  // Private, as the daemon's: an SSH job's control socket goes there (mode 700).
  const runtimeDir = await Deno.makeTempDir({ prefix: "itx-dry-run-" });
  const removeRuntimeDir = removeAfterCrash(runtimeDir); // Also after a crash.
  const fromOptions = config.file === COMMAND_LINE_CONFIG; // Said in the words of the options.
  try {
    for (const job of config.jobs) {
      const transport = createTransport(job, runtimeDir, null, fromOptions);
      const held = closedOnStop(transport); // Ctrl-C: no SSH master outlives the dry run.
      // Renamed, or spelled as an older version recorded it: the rows the start takes over.
      const table = ledger && rowsAsStartFinds(ledger, job, config.jobs);
      let count = 0;
      let recorded = 0;
      const waiting: Waiting[] = [];
      const skipped: SkippedEntry[] = [];
      const chosen = new Map<string, string>();
      const noAnswer = (why: string) => {
        if (!unasked.some((said) => said.startsWith(`job ${job.name}: `))) {
          unasked.push(`job ${job.name}: ${why}`);
        }
      };
      try {
        const info = await Deno.stat(job.watch_path).catch(() => null);
        if (!info?.isDirectory) {
          write(`job ${job.name}: watch folder ${job.watch_path} does not exist`);
          missing.push(`${job.watch_path} (job ${job.name}): the folder does not exist`);
          continue;
        }
        const unread = await unlistable(job.watch_path);
        if (unread !== null) {
          write(`job ${job.name}: watch folder ${job.watch_path}: ${unread}`);
          missing.push(`${job.watch_path} (job ${job.name}): ${unread.replace(/;.*$/, "")}`);
          continue;
        }
        const filter = createFileFilter(job, { skipLog: null, fromOptions });
        const onSkipped = (entry: SkippedEntry) => skipped.push(entry);
        for await (const file of scanFolder(job.watch_path, filter, { onSkipped })) {
          const stat = await Deno.stat(file.path).catch(() => null);
          if (!stat) continue;
          const version = versionOf(stat);
          const prior = table?.doneVersions([file.relPath])[0];
          if (prior && sameVersion(prior, version)) continue;
          const unfinished = incompleteFits(job, file.path, version.mtimeMs);
          if (unfinished !== null && unfinished !== "incomplete") {
            write(`would leave ${quoteIfUnsafe(file.path)} for a later run: ${unfinished.leave}`);
            continue;
          }
          const incomplete = unfinished === "incomplete";
          let fallback = "";
          const destination = await planDestination(
            job,
            { path: file.path, relPath: file.relPath, mtimeMs: version.mtimeMs },
            new Date(),
            (reason) => fallback = ` (${reason})`,
            (_folder, message) => fallback += ` (${message})`,
          );
          // A new file under a name sent before goes beside the file sent (as the run).
          const row = table
            ? fromWatchFolder(table, table.get(file.relPath), job.watch_path)
            : undefined;
          // Planned before and not arrived (an interrupted copy): the run goes on with it there.
          const planned = row && row.state !== "done" && sameVersion(row, version)
            ? row.destination
            : null;
          // What its DATE-OBS says of a file under a name sent before (as the run).
          const header = planned === null
            ? await observationOf(job, { path: file.path, ...version }, destination, row)
            : null;
          if (header === "new") {
            fallback += " (a new observation under a name sent before: its DATE-OBS)";
          }
          const beside = planned ??
            placeBeside(job, destination, row, file.path, header, incomplete);
          // The file sent before, changed or sent again, goes over its own copy (as the run).
          const own = row !== undefined && beside === row.destination && row.transferredAt !== null;
          if (beside !== destination) {
            fallback += own ? OVER_OWN : " (beside the earlier file of that name)";
          }
          const placed = planned ?? freeDestination(beside, file.relPath, (prefix) => [
            ...[...chosen].filter(([rel]) => rel.startsWith(prefix))
              .map(([relPath, destination]) => ({ relPath, destination })),
            ...table?.destinationsFrom(prefix) ?? [],
          ]);
          if (placed !== beside) fallback += " (beside another file's copy of that name)";
          chosen.set(file.relPath, placed);
          // The ledger gives it this name (its own copy there): it replaces that copy.
          const ownName = row !== undefined && row.transferredAt !== null && !row.otherFolder &&
            row.destination === placed;
          waiting.push({
            source: file.path,
            relPath: file.relPath,
            placed,
            size: version.size,
            mtimeMs: version.mtimeMs,
            fallback,
            own: ownName,
            row: ownName ? row : undefined,
          });
        }
        // A lost ledger: what is there with its size is recorded as sent (as `run` does).
        const there = anew === null
          ? waiting.map(() => false)
          : await atDestination(transport, waiting, write, noAnswer);
        const taken = new Set(waiting.map((file) => file.placed));
        await besideChangedCopies(transport, table, waiting, taken, write, noAnswer);
        const others = waiting.filter((file, index) => !there[index] && !file.own);
        await besideOthers(transport, table, others, taken, write, noAnswer);
        for (const [index, file] of waiting.entries()) {
          const target = quoteIfUnsafe(transport.describeTarget(file.placed));
          if (there[index] || file.held) {
            write(
              `would record ${quoteIfUnsafe(file.source)} as sent: ${target} is there already ` +
                (there[index] ? "with its size" : "with its bytes"),
            );
            recorded++;
            continue;
          }
          const beside = file.changed !== undefined
            ? ` (beside ${quoteIfUnsafe(file.changed)}, its copy, changed at the destination ` +
              "since this job sent it: it is kept, not replaced)"
            : file.occupied === undefined
            ? ""
            : ` (beside ${quoteIfUnsafe(file.occupied)}, which holds another file that this job ` +
              "did not send there: it is never replaced)";
          write(
            `would transfer ${quoteIfUnsafe(file.source)} -> ${target}${
              file.changed ? file.fallback.replace(OVER_OWN, "") : file.fallback
            }${beside}`,
          );
          count++;
        }
      } catch (error) {
        // A Ctrl-C reaches the ssh the dry run asks through too: its failure is the stop's.
        await held.close();
        if (!held.stopped()) throw error;
      } finally {
        await held.close();
      }
      const stopped = held.stopped();
      if (stopped) throw new Error(`the dry run was stopped (${stopped}) before its listing ended`);
      skipped.sort((a, b) => a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0);
      for (const entry of skipped) {
        const shown = readablePath(entry.path) + (entry.folder ? "/" : "");
        write(`skipped ${shown}: ${readableText(entry.skip.reason)}`);
      }
      // As `run` does: nothing into the mount point of an archive share that is not mounted.
      const archive = resolve(job.archive_path);
      const unmounted = job.after_transfer === "move" && ledger
        ? await new FolderFileSystem(archive, ledger, "archived").unmountedShare()
        : null;
      if (unmounted) {
        write(
          `would move nothing into ${quoteIfUnsafe(archive)}: ${unmounted} ` +
            "(a share that is not mounted): mount it",
        );
      }
      const removals = table && !unmounted ? await dueSteps(job, table, Date.now()) : [];
      for (const step of removals) {
        write(
          step.moveTo === null
            ? `would delete ${quoteIfUnsafe(step.source)} (arrived verified)`
            : `would move ${quoteIfUnsafe(step.source)} -> ${
              quoteIfUnsafe(step.moveTo)
            } (arrived verified)`,
        );
      }
      const removed = job.after_transfer === "keep"
        ? ""
        : `, ${removals.length} source(s) would be ${job.after_transfer}d now`;
      write(
        `job ${job.name}: ${count} file(s) would be transferred (${job.transfer_method}), ` +
          `${skipped.length} skipped${removed}` +
          (anew === null && recorded === 0
            ? ""
            : `, ${recorded} recorded as sent (at the destination already)`),
      );
      const window = pauseWindowNow(job);
      if (window !== null) write(window);
      total += count;
    }
  } finally {
    ledger?.close();
    await removeRuntimeDir();
  }
  if (missing.length > 0) {
    // The daemon would wait for it; a dry run cannot say what it would send from it.
    throw new WatchFolderError(
      `Cannot list what would be sent from ${missing.join(", ")}; create it (or mount it), ` +
        "give this account read access to it, or fix watch_path",
    );
  }
  if (unasked.length > 0) {
    // Listed as planned, but whether run would send each there, or beside, is not known.
    throw new OutcomeError(
      `The dry run could not ask the destination what it holds (${unasked.join("; ")}): ` +
        "its files are listed where they are planned; see `doctor` for the destination",
    );
  }
  return total;
}

/**
 * What a dry run says of a job inside a pause window of its schedules now (`run` starts it
 * paused, and sends nothing until the next `resume`), or `null`.
 */
function pauseWindowNow(job: JobConfig): string | null {
  const now = new Date();
  if (!pausedAt(job, now)) return null;
  const until = windowEnd(job, now);
  return `job ${job.name}: inside a pause window of its schedules now: \`run\` starts it paused ` +
    `and sends nothing ${until} (\`run --once\`, which runs no schedules, sends now)`;
}

/** A file a dry run lists once it knows what is at its destination already. */
interface Waiting {
  source: string;
  relPath: string;
  /** Its destination, as the transport takes it (moved beside a file there that is not its). */
  placed: string;
  size: number;
  mtimeMs: number;
  /** What is said after its line: why it goes where it goes. */
  fallback: string;
  /** Whether the ledger gives it `placed` (a copy of it arrived there): it replaces that copy. */
  own: boolean;
  /** A file with its bytes is there already, which the run counts as its arrival. */
  held?: boolean;
  /** Where it was planned, where a file this job did not send is (it goes beside it). */
  occupied?: string;
  /** With `own`: the ledger's row, which records the version whose copy arrived. */
  row?: LedgerRow;
  /** Its own copy, changed at the destination since it was sent (it goes beside it). */
  changed?: string;
}

const OVER_OWN = " (over its own copy, sent before)";

/** How long a dry run waits for the destination to say which files it has. */
const ASK_DESTINATION_MS = 60_000;

/**
 * For each of `files`, whether its destination has a file of its size, which `run` with a new
 * ledger records as sent instead of sending it (with checksums, `run` compares their SHA-256 too);
 * all `false` where the method cannot tell or the destination does not answer (said, and told to
 * `noAnswer`).
 */
async function atDestination(
  transport: Transport,
  files: Waiting[],
  write: (line: string) => void,
  noAnswer: (why: string) => void,
): Promise<boolean[]> {
  if (!transport.destinationSizes || files.length === 0) return files.map(() => false);
  try {
    const sizes = await transport.destinationSizes(
      files.map((file) => file.placed),
      AbortSignal.timeout(ASK_DESTINATION_MS),
    );
    return files.map((file) => sizes.get(file.placed) === file.size);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    noAnswer(why);
    write(
      `cannot ask the destination which files it has already (${why}): each is listed as it would be sent`,
    );
    return files.map(() => false);
  }
}

/**
 * `files` whose source changed since its copy arrived, where that copy was changed at the
 * destination since (`pipeline/sent_copy.ts`): it goes beside it, as `run` puts it (no longer
 * `own`, so the next name is asked as a new file's is). A destination that does not answer is
 * said, and told to `noAnswer`.
 */
async function besideChangedCopies(
  transport: Transport,
  table: FileRows | null,
  files: Waiting[],
  taken: Set<string>,
  write: (line: string) => void,
  noAnswer: (why: string) => void,
): Promise<void> {
  const items = files.map((file) => ({ ...file, destination: file.placed }));
  let changed: Set<number>;
  try {
    const rows = files.map((file) => file.own ? file.row ?? null : null);
    changed = await copiesChanged(transport, items, rows, AbortSignal.timeout(ASK_DESTINATION_MS));
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    noAnswer(why);
    return write(`cannot ask the destination whether copies to replace changed there (${why})`);
  }
  for (const n of changed) {
    const file = files[n];
    const beside = nameBesideOther(
      file.placed,
      file.relPath,
      taken,
      (prefix) => table?.destinationsFrom(prefix) ?? [],
    );
    if (beside === null) continue; // The run fails it, and tries again later.
    taken.add(beside);
    [file.changed, file.placed, file.own] = [transport.describeTarget(file.placed), beside, false];
  }
}

/**
 * Where `files` go (none of which the ledger gives its final name: new, or placed beside) when
 * that name holds a file already, as `run` finds it before it writes (`pipeline/batch_items.ts`):
 * a file there is never replaced. One with the source's bytes counts as its arrival (`held`); for
 * another the file goes to the next numbered name beside it that no copy in the ledger has and no
 * other file of this listing takes (`taken`), looked at in turn. A destination that cannot be
 * asked is said once (and told to `noAnswer`); its files are listed where they are planned.
 */
async function besideOthers(
  transport: Transport,
  table: FileRows | null,
  files: Waiting[],
  taken: Set<string>,
  write: (line: string) => void,
  noAnswer: (why: string) => void,
): Promise<void> {
  if (!transport.destinationSizes || !transport.destinationSha256) return;
  let asking = files;
  try {
    for (let tries = 0; tries <= MOST_TRIES_BESIDE && asking.length > 0; tries++) {
      const signal = AbortSignal.timeout(ASK_DESTINATION_MS);
      const sizes = await transport.destinationSizes(asking.map((file) => file.placed), signal);
      const sameSize = asking.filter((file) => sizes.get(file.placed) === file.size);
      const hashes = sameSize.length === 0
        ? new Map<string, string | null>()
        : await transport.destinationSha256(sameSize.map((file) => file.placed), signal);
      const next: Waiting[] = [];
      for (const file of asking) {
        const size = sizes.get(file.placed) ?? null;
        if (size === null) continue;
        const item = { ...file, destination: file.placed };
        if (await sameFile(item, { size, sha256: hashes.get(file.placed) })) {
          file.held = true;
          continue;
        }
        const beside = nameBesideOther(
          file.placed,
          file.relPath,
          taken,
          (prefix) => table?.destinationsFrom(prefix) ?? [],
        );
        file.occupied ??= transport.describeTarget(file.placed);
        if (beside === null) continue; // The run fails it, and tries again later.
        taken.add(beside);
        file.placed = beside;
        next.push(file);
      }
      asking = next;
    }
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    noAnswer(why);
    write(
      `cannot ask the destination which of the names planned hold a file already (${why}): ` +
        "each is listed under the name planned",
    );
  }
}

/**
 * Why `run --once` would leave the file at `path` for a later run (a FITS
 * file whose structure is incomplete, or whose HDUs announced are not all
 * there, unchanged for less than `fits_incomplete_grace_seconds`); past that grace `incomplete`
 * (it goes as it is, never over a copy sent before); `null` for a complete one.
 */
function incompleteFits(
  job: JobConfig,
  path: string,
  mtimeMs: number,
): { leave: string } | "incomplete" | null {
  let structure;
  try {
    structure = readFitsStructure(path);
  } catch {
    return null;
  }
  // As the scan of `run --once` sees it: no close, so HDUs announced and not there are awaited.
  const reason = structure.kind === "incomplete"
    ? structure.reason
    : structure.kind === "complete"
    ? structure.moreExpected
    : null;
  if (reason === null) return null;
  if (Date.now() - mtimeMs >= job.fits_incomplete_grace_seconds * 1000) return "incomplete";
  return { leave: `its FITS structure is incomplete (${reason})` };
}
