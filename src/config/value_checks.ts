/**
 * Checks of single config values the schema refines with: time zone names
 * and cron expressions.
 *
 * @module
 */
import { Cron } from "croner";

/** Whether `zone` is a time zone the runtime knows. */
export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Whether `expression` is a cron expression croner accepts. */
export function isValidCron(expression: string): boolean {
  try {
    new Cron(expression, { paused: true }).stop();
    return true;
  } catch {
    return false;
  }
}
