/**
 * Time zones that do not mean what they seem. A `TZ` in the environment that this program's clock
 * does not follow. The C library (`date`, the
 * logs of other programs) reads a POSIX rule such as `<-03>3` or `CLT4CLST,M9.1.6/24,M4.1.6/24`;
 * the runtime's time zone data (ICU) takes IANA names and simple forms (`UTC+3`) only, and runs on
 * UTC for any other, without a word. A job without `night_timezone` would then put its files into
 * the night folders of UTC while `date` shows the observatory's time. And a zone of the config
 * written `Etc/GMT+3`, whose sign is POSIX's (hours west of UTC): it is UTC-03:00.
 *
 * @module
 */
import type { Config } from "./types.ts";
import { keyPlace, type Path } from "./key_lines.ts";

/** A POSIX TZ zone name: three letters or more, or any of letters, digits, + and - in `<>`. */
const NAME = "(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]+>)";
/** A POSIX TZ offset, hours west of UTC: `[+-]hh[:mm[:ss]]`. */
const OFFSET = "([+-]?)(\\d{1,2})(?::(\\d{1,2})(?::(\\d{1,2}))?)?";
/** A POSIX TZ rule: standard time, and summer time (its offset, its dates) where it has one. */
const RULE = new RegExp(`^${NAME}${OFFSET}(?:(${NAME})(?:${OFFSET})?(?:,.*)?)?$`);

/**
 * The offsets from UTC (minutes east) that the POSIX TZ rule `tz` gives, standard time first, then
 * summer time where it has one (an hour later where it names none); `null` where `tz` is no such
 * rule (an IANA name, `:name`).
 */
export function posixRuleOffsets(tz: string): number[] | null {
  const m = RULE.exec(tz);
  if (m === null) return null;
  const east = (sign: string, h: string, min = "0", s = "0") =>
    (sign === "-" ? 1 : -1) * (Number(h) * 60 + Number(min) + Number(s) / 60);
  const standard = east(m[1], m[2], m[3], m[4]);
  if (m[5] === undefined) return [standard];
  return [standard, m[7] === undefined ? standard + 60 : east(m[6], m[7], m[8], m[9])];
}

/** `minutes` east of UTC as `+hh:mm`. */
function offsetText(minutes: number): string {
  const abs = Math.abs(Math.round(minutes));
  const hhmm = `${String(Math.floor(abs / 60)).padStart(2, "0")}:${
    String(abs % 60).padStart(2, "0")
  }`;
  return `${minutes < 0 ? "-" : "+"}${hhmm}`;
}

/**
 * What to say where `tz` (the environment's `TZ`) is a POSIX rule whose time now this program's
 * clock does not keep, and jobs of `config` take their night folders from the system's zone (no
 * `night_timezone`): TZ, the zone used and to set `night_timezone`; else `null`.
 */
export function tzNotFollowed(
  config: Pick<Config, "jobs">,
  tz = Deno.env.get("TZ"),
  now = new Date(),
): string | null {
  const offsets = tz ? posixRuleOffsets(tz) : null;
  if (!tz || offsets === null) return null;
  const used = -now.getTimezoneOffset();
  if (offsets.includes(used)) return null;
  const jobs = config.jobs.filter((job) => job.night_timezone === "").map((job) => job.name);
  if (jobs.length === 0) return null;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone ?? `UTC${offsetText(used)}`;
  const summer = offsets.length > 1 ? ` (${offsetText(offsets[1])} in summer time)` : "";
  return `TZ=${tz} in the environment is a rule this program's clock does not read: it keeps ` +
    `${zone} (${offsetText(used)} now), not TZ's ${offsetText(offsets[0])}${summer} as date ` +
    `does, so the night folders of job(s) ${jobs.join(", ")} (no night_timezone) follow ` +
    `${zone}; set night_timezone to an IANA name such as "America/Santiago" (or TZ to one)`;
}

/**
 * What to say of each `night_timezone` and schedule `timezone` of `config` written `Etc/GMT+3`:
 * the Etc zones take POSIX's sign (hours west of UTC), so it is UTC-03:00, the reverse of what most
 * read in it; the offset it is, and the name of the one it seems.
 */
export function reversedSignZones(config: Config): string[] {
  return config.jobs.flatMap((job, index) => {
    const zones: [Path, string][] = [[["night_timezone"], job.night_timezone]];
    job.schedules.forEach((entry, at) =>
      zones.push([["schedules", at, "timezone"], entry.timezone])
    );
    return zones.flatMap(([path, zone]) => {
      const etc = /^etc\/gmt([+-])0*([1-9]\d?)$/i.exec(zone);
      if (etc === null) return [];
      const [seems, hours] = [etc[1], `${etc[2].padStart(2, "0")}:00`];
      const is = seems === "+" ? "-" : "+";
      const key = path.length === 1 ? path[0] : `schedules[${path[1]}].timezone`;
      return [
        `${keyPlace(config.file, index, path)}: ${key} of job ${job.name}: ${zone} is ` +
        `UTC${is}${hours}, not UTC${seems}${hours}: the Etc zones count hours west of UTC ` +
        `(POSIX's sign); for UTC${seems}${hours} write Etc/GMT${is}${etc[2]}, or a city's zone ` +
        'such as "America/Santiago"',
      ];
    });
  });
}
