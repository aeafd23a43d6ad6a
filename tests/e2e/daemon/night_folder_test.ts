import assert from "node:assert/strict";
import { nightFolder } from "../../../src/layout/destination.ts";

/** [instant (UTC), rollover hour, time zone, expected folder, why]. */
type Case = [string, number, string, string, string];

function check(cases: Case[]): void {
  for (const [instant, rolloverHour, timeZone, expected, why] of cases) {
    assert.equal(
      nightFolder(new Date(instant), rolloverHour, timeZone),
      expected,
      `${instant} rollover ${rolloverHour} in ${timeZone}: ${why}`,
    );
  }
}

Deno.test("UTC: rollover 0 is the calendar date, rollover 12 splits at noon", () => {
  check([
    ["2024-03-15T03:00:00Z", 0, "UTC", "20240315", "rollover 0 is the calendar day"],
    ["2024-03-15T00:00:00Z", 0, "UTC", "20240315", "midnight starts the day"],
    ["2024-03-14T23:59:59.999Z", 0, "UTC", "20240314", "last instant of the day"],
    ["2024-03-15T03:00:00Z", 12, "UTC", "20240314", "03:00 belongs to the evening before"],
    ["2024-03-15T11:59:59.999Z", 12, "UTC", "20240314", "just before noon"],
    ["2024-03-15T12:00:00Z", 12, "UTC", "20240315", "12:00 exactly starts the new night"],
    ["2024-03-15T23:30:00Z", 12, "UTC", "20240315", "evening of the same day"],
    ["2024-03-15T00:30:00Z", 1, "UTC", "20240314", "rollover 1"],
    ["2024-03-15T23:00:00Z", 23, "UTC", "20240315", "rollover 23 at 23:00"],
    ["2024-03-15T22:59:59Z", 23, "UTC", "20240314", "rollover 23 before 23:00"],
  ]);
});

Deno.test("month, year and leap-day boundaries of the previous day", () => {
  check([
    ["2024-01-01T03:00:00Z", 12, "UTC", "20231231", "new year's morning goes to Dec 31"],
    ["2024-03-01T03:00:00Z", 12, "UTC", "20240229", "leap year: Mar 1 -> Feb 29"],
    ["2023-03-01T03:00:00Z", 12, "UTC", "20230228", "common year: Mar 1 -> Feb 28"],
    ["2100-03-01T03:00:00Z", 12, "UTC", "21000228", "2100 is not a leap year"],
    ["2000-03-01T03:00:00Z", 12, "UTC", "20000229", "2000 is a leap year"],
    ["2024-05-01T03:00:00Z", 12, "UTC", "20240430", "30-day month"],
    ["2024-08-01T03:00:00Z", 12, "UTC", "20240731", "31-day month"],
  ]);
});

Deno.test("America/Santiago: negative offset, summer and winter time", () => {
  check([
    ["2024-01-10T05:30:00Z", 0, "America/Santiago", "20240110", "02:30 -03"],
    ["2024-01-10T05:30:00Z", 12, "America/Santiago", "20240109", "02:30 -03, rollover 12"],
    ["2024-01-10T02:30:00Z", 0, "America/Santiago", "20240109", "23:30 -03 the day before"],
    ["2024-01-10T15:00:00Z", 12, "America/Santiago", "20240110", "12:00 -03 exactly"],
    ["2024-07-10T03:30:00Z", 0, "America/Santiago", "20240709", "23:30 -04 (winter)"],
    ["2024-07-10T04:30:00Z", 0, "America/Santiago", "20240710", "00:30 -04"],
    ["2024-07-10T04:30:00Z", 12, "America/Santiago", "20240709", "00:30 -04, rollover 12"],
    ["2024-07-10T16:00:00Z", 12, "America/Santiago", "20240710", "12:00 -04 exactly"],
    ["2024-07-10T15:59:59Z", 12, "America/Santiago", "20240709", "11:59:59 -04"],
  ]);
});

Deno.test("America/Santiago: the 23-hour day when summer time starts (2024-09-08)", () => {
  check([
    ["2024-09-08T03:59:00Z", 0, "America/Santiago", "20240907", "23:59 -04"],
    ["2024-09-08T04:00:00Z", 0, "America/Santiago", "20240908", "00:00 skipped: 01:00 -03"],
    ["2024-09-08T04:00:00Z", 2, "America/Santiago", "20240907", "01:00 -03 before rollover 2"],
    ["2024-09-08T06:00:00Z", 12, "America/Santiago", "20240907", "03:00 -03, rollover 12"],
    // 24 h before this instant is still Sep 7 local; the rule must use the local date.
    ["2024-09-09T03:30:00Z", 12, "America/Santiago", "20240908", "00:30 -03 on Sep 9"],
  ]);
});

Deno.test("Asia/Tokyo: positive offset without summer time", () => {
  check([
    ["2024-03-14T18:00:00Z", 0, "Asia/Tokyo", "20240315", "03:00 JST"],
    ["2024-03-14T18:00:00Z", 12, "Asia/Tokyo", "20240314", "03:00 JST, rollover 12"],
    ["2024-03-15T03:00:00Z", 12, "Asia/Tokyo", "20240315", "12:00 JST exactly"],
    ["2024-03-14T14:59:59Z", 0, "Asia/Tokyo", "20240314", "23:59:59 JST"],
    ["2023-12-31T15:00:00Z", 0, "Asia/Tokyo", "20240101", "midnight of new year JST"],
    ["2023-12-31T18:00:00Z", 12, "Asia/Tokyo", "20231231", "03:00 JST on Jan 1, rollover 12"],
  ]);
});

Deno.test("Pacific/Chatham: quarter-hour offsets +12:45 and +13:45", () => {
  check([
    ["2024-01-15T13:00:00Z", 0, "Pacific/Chatham", "20240116", "02:45 +13:45"],
    ["2024-01-15T13:00:00Z", 12, "Pacific/Chatham", "20240115", "02:45 +13:45, rollover 12"],
    ["2024-01-14T22:15:00Z", 12, "Pacific/Chatham", "20240115", "12:00 +13:45 exactly"],
    ["2024-01-14T22:14:59Z", 12, "Pacific/Chatham", "20240114", "11:59:59 +13:45"],
    ["2024-07-15T11:15:00Z", 0, "Pacific/Chatham", "20240716", "00:00 +12:45"],
    ["2024-07-15T11:15:00Z", 1, "Pacific/Chatham", "20240715", "00:00 +12:45, rollover 1"],
    ["2024-07-15T11:14:00Z", 0, "Pacific/Chatham", "20240715", "23:59 +12:45"],
  ]);
});

Deno.test("Europe/Berlin: the 23-hour and 25-hour days", () => {
  check([
    // 2024-03-31: 02:00 CET -> 03:00 CEST.
    ["2024-03-31T00:30:00Z", 12, "Europe/Berlin", "20240330", "01:30 CET, rollover 12"],
    ["2024-03-31T01:30:00Z", 0, "Europe/Berlin", "20240331", "03:30 CEST"],
    ["2024-03-31T10:00:00Z", 12, "Europe/Berlin", "20240331", "12:00 CEST exactly"],
    // 00:30 CEST on Apr 1; 24 h earlier is 23:30 CET on Mar 30.
    ["2024-03-31T22:30:00Z", 12, "Europe/Berlin", "20240331", "the day after the 23-hour day"],
    // 2024-10-27: 03:00 CEST -> 02:00 CET; 02:30 happens twice.
    ["2024-10-27T00:30:00Z", 12, "Europe/Berlin", "20241026", "first 02:30 (CEST)"],
    ["2024-10-27T01:30:00Z", 12, "Europe/Berlin", "20241026", "second 02:30 (CET)"],
    ["2024-10-27T00:30:00Z", 0, "Europe/Berlin", "20241027", "first 02:30, rollover 0"],
    ["2024-10-27T11:00:00Z", 12, "Europe/Berlin", "20241027", "12:00 CET exactly"],
    ["2024-10-27T23:30:00Z", 12, "Europe/Berlin", "20241027", "00:30 CET on Oct 28"],
  ]);
});

Deno.test("an empty time zone means the system time zone", async () => {
  const module = new URL("../../../src/layout/destination.ts", import.meta.url).href;
  const script = `import { nightFolder } from ${JSON.stringify(module)};\n` +
    `console.log(nightFolder(new Date("2024-03-14T18:00:00Z"), 0, ""));`;
  for (const [tz, expected] of [["Asia/Tokyo", "20240315"], ["UTC", "20240314"]]) {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env: { TZ: tz },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, stderr);
    assert.equal(new TextDecoder().decode(run.stdout).trim(), expected, `TZ=${tz}`);
  }
});

Deno.test("nightFolder rejects bad input with a RangeError", () => {
  const instant = new Date("2024-03-15T03:00:00Z");
  for (const hour of [-1, 24, 1.5, Number.NaN]) {
    assert.throws(() => nightFolder(instant, hour, "UTC"), (error: Error) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /^Cannot compute night folder: rollover hour must be/);
      return true;
    });
  }
  assert.throws(() => nightFolder(new Date("garbage"), 0, "UTC"), /invalid date/);
  assert.throws(
    () => nightFolder(instant, 0, "Mars/Olympus_Mons"),
    /^RangeError: Cannot compute night folder: unknown time zone "Mars\/Olympus_Mons"/,
  );
});

Deno.test("the local hours remembered per second give what the time zone data gives, across offset changes and within a second", () => {
  // Each zone's night as the time zone data says, asked afresh for every instant.
  const fresh = (instant: Date, rolloverHour: number, timeZone: string) => {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
    }).formatToParts(instant);
    const field = (type: string) => Number(parts.find((part) => part.type === type)!.value);
    const day = new Date(Date.UTC(field("year"), field("month") - 1, field("day")));
    if (field("hour") < rolloverHour) day.setUTCDate(day.getUTCDate() - 1);
    return day.toISOString().slice(0, 10).replaceAll("-", "");
  };
  // Lord Howe moves by 30 minutes, Kathmandu sits at +5:45; Berlin's hour goes back.
  const changes: Array<[string, string]> = [
    ["Australia/Lord_Howe", "2024-04-06T14:59:58.500Z"],
    ["Asia/Kathmandu", "2024-03-15T06:14:58.250Z"],
    ["Europe/Berlin", "2024-10-27T00:59:58.999Z"],
  ];
  let asked = 0;
  for (const [timeZone, start] of changes) {
    for (let step = 0; step < 12; step++) {
      // Half-second steps: two instants of each second, either side of the change.
      const instant = new Date(new Date(start).getTime() + step * 500);
      for (const rollover of [0, 1, 12]) {
        assert.equal(
          nightFolder(instant, rollover, timeZone),
          fresh(instant, rollover, timeZone),
          `${instant.toISOString()} ${timeZone} rollover ${rollover}`,
        );
        asked++;
      }
    }
  }
  assert.equal(asked, 108);
});
