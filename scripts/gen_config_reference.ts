/**
 * Rewrite the configuration key references from the schema: the summary in
 * README.md and the full reference in docs/configuration.md, each between
 * `<!-- config-reference:start -->` and `<!-- config-reference:end -->`.
 * Run with `deno task docs`; `--check` only reports drift.
 *
 * @module
 */
import { renderConfigReference, renderConfigSummary } from "../src/config/reference.ts";

/** Each generated file (relative to the repository root) and what its region holds. */
export const GENERATED: readonly { path: string; render: () => string }[] = [
  { path: "README.md", render: renderConfigSummary },
  { path: "docs/configuration.md", render: renderConfigReference },
];

/** Marker lines that delimit the generated region of each file. */
export const START_MARKER = "<!-- config-reference:start -->";
/** See {@linkcode START_MARKER}. */
export const END_MARKER = "<!-- config-reference:end -->";

/**
 * Replace the text between the markers in `readme` with `reference`.
 *
 * @throws {Error} when the markers are missing or out of order
 */
export function replaceRegion(readme: string, reference: string): string {
  const start = readme.indexOf(START_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (start < 0 || end < start) {
    throw new Error(
      `Cannot update the config reference: the file needs the lines ${START_MARKER} and ` +
        `${END_MARKER}, in that order`,
    );
  }
  return readme.slice(0, start + START_MARKER.length) + "\n\n" + reference + "\n\n" +
    readme.slice(end);
}

/**
 * The generated region of `readme` (between the markers, trimmed), or `undefined`
 * when the markers are missing.
 */
export function readRegion(readme: string): string | undefined {
  const start = readme.indexOf(START_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (start < 0 || end < start) return undefined;
  return readme.slice(start + START_MARKER.length, end).trim();
}

if (import.meta.main) {
  let stale = false;
  for (const { path, render } of GENERATED) {
    const text = await Deno.readTextFile(path);
    let updated: string;
    try {
      updated = replaceRegion(text, render());
    } catch (error) {
      console.error(`${path}: ${(error as Error).message}`);
      Deno.exit(1);
    }
    if (updated === text) {
      console.log(`${path}: the config reference is up to date`);
    } else if (Deno.args.includes("--check")) {
      console.error(`${path}: the config reference is out of date; run \`deno task docs\``);
      stale = true;
    } else {
      await Deno.writeTextFile(path, updated);
      console.log(`${path}: updated the config reference`);
    }
  }
  if (stale) Deno.exit(1);
}
