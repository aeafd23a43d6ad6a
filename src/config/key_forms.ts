/**
 * Other forms of keys the loader accepts besides those of the schema
 * (`schema.ts`): a single text value for a list, and names of keys renamed
 * since earlier versions.
 *
 * @module
 */

/** List keys where a single text value is accepted as a one-element list. */
export const SINGLE_STRING_LISTS: ReadonlySet<string> = new Set([
  "file_patterns",
  "exclude_patterns",
  "close_shortcut_patterns",
  "growing_patterns",
]);

/**
 * Keys renamed since earlier versions (old name: current name). A config
 * written with an old name loads unchanged; giving both is an error.
 */
export const OLD_KEY_NAMES: ReadonlyMap<string, string> = new Map([
  ["retry_delay", "retry_delay_seconds"],
]);
