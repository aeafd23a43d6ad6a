/**
 * The night-folder rule: which `YYYYMMDD` folder an instant belongs to, in an
 * observatory's local time with a rollover hour.
 *
 * @module
 */

/** One formatter per time zone; building them is slow and the zone rarely changes. */
const formatters = new Map<string, Intl.DateTimeFormat>();

/**
 * The night folder name `YYYYMMDD` for an instant: take the local date and hour
 * in `timeZone`; if the local hour is before `rolloverHour`, the night belongs
 * to the previous calendar day.
 *
 * @param instant The moment to place (observation start, mtime or now).
 * @param rolloverHour Local hour (0–23) at which a new night folder begins; 0 means midnight.
 * @param timeZone IANA time zone name, e.g. "America/Santiago"; "" means the system zone.
 * @returns Eight digits, e.g. "20240314".
 * @throws {RangeError} When the instant is invalid, the hour is not an integer 0–23, or
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
  const parts = formatterFor(timeZone).formatToParts(instant);
  const field = (type: Intl.DateTimeFormatPartTypes) =>
    Number(parts.find((part) => part.type === type)?.value);
  let [year, month, day] = [field("year"), field("month"), field("day")];
  if (field("hour") < rolloverHour) {
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

/** The cached formatter giving local year, month, day and 0–23 hour in `timeZone`. */
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
