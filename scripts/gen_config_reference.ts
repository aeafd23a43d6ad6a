/**
 * Rewrite the configuration key reference in README.md (between
 * `<!-- config-reference:start -->` and `<!-- config-reference:end -->`) from
 * the schema. Run with `deno task docs`; `--check` only reports drift.
 *
 * @module
 */
import { renderConfigReference } from "../src/config/reference.ts";

/** Marker lines that delimit the generated region of README.md. */
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
      `Cannot update the config reference: README.md needs the lines ${START_MARKER} and ` +
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
  const path = "README.md";
  const readme = await Deno.readTextFile(path);
  const updated = replaceRegion(readme, renderConfigReference());
  if (Deno.args.includes("--check")) {
    if (updated !== readme) {
      console.error("README.md config reference is out of date; run `deno task docs`");
      Deno.exit(1);
    }
    console.log("README.md config reference is up to date");
  } else if (updated !== readme) {
    await Deno.writeTextFile(path, updated);
    console.log("updated the config reference in README.md");
  } else {
    console.log("README.md config reference is already up to date");
  }
}
