/**
 * Where a file goes at the destination: its night folder, then the subfolders
 * it had under the watch folder, then its name, byte for byte.
 *
 * How image-transfer's temporary files and upload folders are named at a
 * destination, so the watcher can leave them alone and the transports can
 * make and recognise them (`transfer/temp_name.ts` makes them): hidden
 * (leading dot) and ending in {@linkcode TEMP_SUFFIX}.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { observationDate, observationDateProblem, readFitsHeader } from "./fits_header.ts";
import { quoteIfUnsafe } from "../log/logging.ts";

/** A file ready to be placed. */
export interface PlannedFile {
  /** absolute source path */
  path: string;
  /** path relative to the watch folder, "/" separators */
  relPath: string;
  mtimeMs: number;
}

/**
 * Where a file goes, relative to remote_base_path: `<YYYYMMDD>/<subdirs of relPath>/<name>`
 * with "/" separators. The date comes from `job.night_date_source`: `mtime` (file
 * mtime), `now` (the `now` argument), `fits` (DATE-OBS via
 * {@linkcode readFitsHeader}; when the header cannot be read or has no usable
 * date, the mtime is used and `onFallback(reason)` is called).
 *
 * @param job The night rule settings of the job.
 * @param file The file to place; only `fits` reads it.
 * @param now The current time, used by `now`.
 * @param onFallback Told why DATE-OBS could not be used, once per call.
 * @param onAhead Told when the date that names the night is more than a day
 *   ahead of `now` (a wrong clock on the instrument or here), with the night
 *   folder and what to say.
 * @returns The destination path, e.g. "20240314/flats/M 42.fits".
 * @throws {Error} When `relPath` is empty, absolute, or has an empty, "." or ".." segment.
 */
export async function planDestination(
  job: Pick<JobConfig, "night_date_source" | "night_rollover_hour" | "night_timezone">,
  file: PlannedFile,
  now: Date,
  onFallback?: (reason: string) => void,
  onAhead?: (folder: string, message: string) => void,
): Promise<string> {
  const segments = file.relPath.split("/");
  if (segments.some((segment) => segment === "" || segment === "." || segment === "..")) {
    throw new Error(
      `Cannot plan destination of ${file.path}: relative path "${file.relPath}" ` +
        `must name a file inside the watch folder`,
    );
  }
  let fellBack = false;
  const instant = await nightDate(job.night_date_source, file, now, (reason) => {
    fellBack = true;
    onFallback?.(reason);
  });
  const folder = nightFolder(instant, job.night_rollover_hour, job.night_timezone);
  const aheadMs = instant.getTime() - now.getTime();
  if (aheadMs > DAY_MS) {
    const days = Math.floor(aheadMs / DAY_MS);
    const what = job.night_date_source === "fits" && !fellBack ? "DATE-OBS" : "mtime";
    onAhead?.(
      folder,
      `The ${what} of ${file.path} (${instant.toISOString()}) is ${days} day(s) ahead of this ` +
        `machine's clock, so the night rule gives it night folder ${folder}. Check the clock of ` +
        `the instrument or of this machine`,
    );
  }
  return [folder, ...segments].join("/");
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * Where a new file under a name sent before goes when its job removes sources once sent
 * (`after_transfer: delete` or `move`): beside the earlier file, never over it. `planned` is
 * where its name leads, `previous` where the earlier file under that name went. The result is
 * `planned` unless the earlier file is there or at a numbered name beside it; then the next
 * number, before the extensions: `flat_001~2.fits`, `flat_001~3.fits`... A version not `arrived`
 * yet (planned before, and changed since) keeps the numbered name it was given.
 */
export function besideEarlier(planned: string, previous: string, arrived = true): string {
  const { folder, stem, extension } = nameParts(planned);
  // A version not arrived keeps its place in the folder (a number `freeDestination` gave too).
  if (!arrived) {
    return previous.slice(0, previous.lastIndexOf("/") + 1) === folder ? previous : planned;
  }
  const number = numberOf(previous, folder, stem, extension);
  return number === 0 ? planned : numberedPath(folder, stem, number + 1, extension);
}

/** A source file and where its latest copy went (see {@linkcode freeDestination}). */
export interface SentSource {
  relPath: string;
  destination: string;
}

/**
 * `destination` (where the source `relPath` is to go), or, where a copy of another file is there,
 * the next numbered name beside it that holds none: a source named like a numbered copy
 * (`d~2.tif`) never lands on a copy a new `d.tif` was given, nor the reverse. A name's copies are
 * numbered one after another in a night folder and the ledger keeps the latest, so a source whose
 * latest copy there is `d~3.tif` holds `d.tif`, `d~2.tif` and `d~3.tif`. The source's own latest
 * copy is replaced only where `destination` is that copy (a new version of it).
 * `sourcesFrom(prefix)` lists the sources whose relative paths start with `prefix` and where their
 * latest copies went (the ledger's, and those planned but not recorded yet).
 *
 * @throws {Error} when no name beside it is free
 */
export function freeDestination(
  destination: string,
  relPath: string,
  sourcesFrom: (prefix: string) => SentSource[],
): string {
  const relFolder = relPath.slice(0, relPath.lastIndexOf("/") + 1);
  const held = (candidate: string) => {
    const { folder, stem } = nameParts(candidate);
    const number = /~(\d+)$/.exec(stem);
    // A name without a number is only its own source's (numbered and shortened names have one).
    if (number === null) return false;
    const k = Number(number[1]);
    // Every source whose copies may be named so starts with the stem, its number taken off.
    for (const source of sourcesFrom(relFolder + stem.slice(0, number.index))) {
      const latest = source.destination;
      if (latest.slice(0, latest.lastIndexOf("/") + 1) !== folder) continue;
      if (latest === candidate) {
        if (source.relPath === relPath && candidate === destination) continue;
        return true;
      }
      const name = source.relPath.slice(relFolder.length);
      if (name.includes("/")) continue;
      const parts = nameParts(folder + name);
      const copies = numberOf(latest, folder, parts.stem, parts.extension);
      if (copies === 0) continue;
      if (candidate === folder + name) return true; // Its first copy.
      if (
        k > 1 && k <= copies && candidate === numberedPath(folder, parts.stem, k, parts.extension)
      ) {
        return true;
      }
    }
    return false;
  };
  const beside = namesBeside(destination, relPath);
  let free = destination;
  while (held(free)) {
    const next = beside.next();
    if (next.done) throw new Error(`no name beside ${destination} is free`);
    free = next.value;
  }
  return free;
}

/**
 * The numbered names after `destination` (where the source `relPath` is to go), on along the
 * source's own numbers (never another's: its copies stay one run of numbers), 10,000 at most.
 */
export function* namesBeside(destination: string, relPath: string): Generator<string> {
  const own = nameParts(
    destination.slice(0, destination.lastIndexOf("/") + 1) +
      relPath.slice(relPath.lastIndexOf("/") + 1),
  );
  let number = Math.max(1, numberOf(destination, own.folder, own.stem, own.extension));
  for (let tries = 0; tries < 10_000; tries++) {
    yield numberedPath(own.folder, own.stem, ++number, own.extension);
  }
}

/**
 * The next numbered name after `destination` for the source `relPath` where a file this job did
 * not send holds `destination`: one no other source's copy has (`sourcesFrom`, as for
 * {@linkcode freeDestination}) and `taken` (the other files of the batch) does not hold, among the
 * next 64; `null` when none is. `run` sends there (`pipeline/batch_items.ts`), and `run --dry-run`
 * lists it.
 */
export function nameBesideOther(
  destination: string,
  relPath: string,
  taken: Set<string>,
  sourcesFrom: (prefix: string) => SentSource[],
): string | null {
  let tries = 0;
  for (const name of namesBeside(destination, relPath)) {
    if (++tries > 64) break;
    if (taken.has(name)) continue;
    try {
      if (freeDestination(name, relPath, sourcesFrom) === name) return name;
    } catch {
      return null;
    }
  }
  return null;
}

/** The number of `path` as a copy of `folder` + `stem` + `extension` (1: that name; 0: neither). */
function numberOf(path: string, folder: string, stem: string, extension: string): number {
  if (path === folder + stem + extension) return 1;
  const number = Number(/~(\d+)(\.[A-Za-z][A-Za-z0-9]{0,7})*$/.exec(path)?.[1] ?? 0);
  return number > 1 && path === numberedPath(folder, stem, number, extension) ? number : 0;
}

/** The folder (with its `/`), the name without its extensions, and the extensions of `path`. */
function nameParts(path: string): { folder: string; stem: string; extension: string } {
  const slash = path.lastIndexOf("/");
  const name = path.slice(slash + 1);
  const extension = /(\.[A-Za-z][A-Za-z0-9]{0,7})*$/.exec(name)![0];
  return {
    folder: path.slice(0, slash + 1),
    stem: name.slice(0, name.length - extension.length),
    extension,
  };
}

/** Longest file name most file systems take, in bytes of UTF-8. */
const MAX_NAME_BYTES = 255;

/**
 * `folder` + `stem~number` + `extension`, the stem shortened (by whole characters) where the name
 * would be longer than file systems allow.
 */
function numberedPath(folder: string, stem: string, number: number, extension: string): string {
  const encoder = new TextEncoder();
  const tail = `~${number}${extension}`;
  // Extensions too long for any stem: the number goes after them.
  if (extension !== "" && encoder.encode(tail).length > MAX_NAME_BYTES) {
    return numberedPath(folder, stem + extension, number, "");
  }
  let kept = stem;
  while (kept !== "" && encoder.encode(kept + tail).length > MAX_NAME_BYTES) {
    kept = Array.from(kept).slice(0, -1).join("");
  }
  return `${folder}${kept}${tail}`;
}

/** The instant that names the night, per the date source. */
async function nightDate(
  source: JobConfig["night_date_source"],
  file: PlannedFile,
  now: Date,
  onFallback?: (reason: string) => void,
): Promise<Date> {
  if (source === "now") return now;
  const mtime = new Date(file.mtimeMs);
  if (source === "mtime") return mtime;
  let reason: string;
  try {
    await assertRegularFile(file.path);
    const header = await readFitsHeader(file.path, { observation: true });
    const date = observationDate(header);
    if (date !== null) return date;
    const raw = header.get("DATE-OBS");
    reason = `Cannot use DATE-OBS of ${quoteIfUnsafe(file.path)}: ` +
      (raw !== undefined
        ? observationDateProblem(raw)
        : header.get("NAXIS") === 0
        ? "neither the primary header nor the first extension's has a DATE-OBS card"
        : "the primary header has no DATE-OBS card");
  } catch (error) {
    reason = error instanceof Error ? error.message : String(error);
  }
  onFallback?.(`${reason}; using the file mtime instead`);
  return mtime;
}

/** Throw unless `path` is a regular file: a FIFO or device would block or never end. */
export async function assertRegularFile(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot read FITS header of ${path}: ${why}`, { cause: error });
  }
  if (!info.isFile) throw new Error(`Cannot read FITS header of ${path}: not a regular file`);
}

/** One formatter per time zone; building them is slow and the zone rarely changes. */
const formatters = new Map<string, Intl.DateTimeFormat>();

/**
 * The night folder name `YYYYMMDD` for an instant: take the local date and hour
 * in `timeZone`; if the local hour is before `rolloverHour`, the night belongs
 * to the previous calendar day.
 *
 * @param instant The moment to place (observation start, mtime or now).
 * @param rolloverHour Local hour (0-23) at which a new night folder begins; 0 means midnight.
 * @param timeZone IANA time zone name, e.g. "America/Santiago"; "" means the system zone.
 * @returns Eight digits, e.g. "20240314".
 * @throws {RangeError} When the instant is invalid, the hour is not an integer 0-23, or
 * the time zone is unknown.
 */
export function nightFolder(instant: Date, rolloverHour: number, timeZone: string): string {
  if (Number.isNaN(instant.getTime())) {
    throw new RangeError("Cannot compute night folder: the instant is an invalid date");
  }
  if (!Number.isInteger(rolloverHour) || rolloverHour < 0 || rolloverHour > 23) {
    throw new RangeError(
      `Cannot compute night folder: rollover hour must be an integer 0-23, got ${rolloverHour}`,
    );
  }
  let [year, month, day, hour] = localHour(instant, timeZone);
  if (hour < rolloverHour) {
    // Calendar arithmetic on the local date: days around a DST change last 23 or 25 h.
    const previous = new Date(0);
    previous.setUTCFullYear(year, month - 1, day - 1);
    [year, month, day] = [
      previous.getUTCFullYear(),
      previous.getUTCMonth() + 1,
      previous.getUTCDate(),
    ];
  }
  return `${pad(year, 4)}${pad(month, 2)}${pad(day, 2)}`;
}

/**
 * The local year, month, day and hour of each second lately asked for, by zone and second: the
 * files of a burst share a few seconds, and the time zone data is slow to consult. Every zone's
 * offset changes on a whole second, so an instant's second fixes its local hour.
 */
const localHours = new Map<string, [number, number, number, number]>();

/** Local year, month (1-12), day and hour (0-23) of `instant` in `timeZone`. */
function localHour(instant: Date, timeZone: string): [number, number, number, number] {
  const key = `${Math.floor(instant.getTime() / 1000)} ${timeZone}`;
  let local = localHours.get(key);
  if (local === undefined) {
    const parts = formatterFor(timeZone).formatToParts(instant);
    const field = (type: Intl.DateTimeFormatPartTypes) =>
      Number(parts.find((part) => part.type === type)?.value);
    local = [field("year"), field("month"), field("day"), field("hour")];
    if (localHours.size >= 256) localHours.clear();
    localHours.set(key, local);
  }
  return [...local];
}

/** The cached formatter giving local year, month, day and 0-23 hour in `timeZone`. */
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    try {
      formatter = new Intl.DateTimeFormat("en-US", {
        timeZone: timeZone === "" ? undefined : timeZone,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
      });
    } catch (error) {
      throw new RangeError(
        `Cannot compute night folder: unknown time zone "${timeZone}"; use an IANA name such as "UTC"`,
        { cause: error },
      );
    }
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** Zero-padded decimal. */
function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/** Suffix that marks an image-transfer temporary file or upload folder. */
export const TEMP_SUFFIX = ".image-transfer-partial";

/** Whether a base name is one of image-transfer's temporary files or upload folders. */
export function isTempName(name: string): boolean {
  return name.startsWith(".") && name.endsWith(TEMP_SUFFIX);
}
