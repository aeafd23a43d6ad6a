/**
 * Schema of one `schedules` entry (a timed action of a job): a cron
 * expression or an interval, an optional time zone, and the action.
 *
 * @module
 */
import { z } from "zod";
import { isValidCron, isValidTimeZone } from "./value_checks.ts";

/** One `schedules` entry: when (a cron expression or an interval) and what. */
export const scheduleEntry = z.strictObject({
  cron: z.string().min(1).refine(isValidCron, {
    error: (issue) =>
      `not a cron expression: ${
        JSON.stringify(issue.input)
      }; use five fields (minute hour day month weekday), e.g. "0 8 * * *", or six with seconds first`,
  }).optional(),
  every_seconds: z.number().positive().max(31_536_000).optional(),
  timezone: z.string().refine((zone) => zone === "" || isValidTimeZone(zone), {
    error: (issue) =>
      `unknown time zone ${
        JSON.stringify(issue.input)
      }; use an IANA name such as "America/Santiago"`,
  }).default(""),
  action: z.enum(["rescan", "command", "report", "pause", "resume"]),
  command: z.array(z.string()).default([]),
  timeout_seconds: z.number().positive().max(604_800).default(3600),
  nights: z.int().min(1).max(366).default(1),
}).superRefine((entry, ctx) => {
  if ((entry.cron === undefined) === (entry.every_seconds === undefined)) {
    ctx.addIssue({
      code: "custom",
      message: 'give either "cron" (e.g. "0 8 * * *") or "every_seconds", not both or neither',
    });
  }
  if (
    entry.action === "command" && (entry.command.length === 0 || entry.command[0].trim() === "")
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["command"],
      message:
        'required for action "command": the program and its arguments, e.g. ["/usr/local/bin/reduce"]',
    });
  }
});
