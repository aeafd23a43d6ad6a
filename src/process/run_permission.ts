/**
 * The programs the permission set (`deno.json` → `permissions.image-transfer`)
 * lets image-transfer run, and the one `--allow-run` flag that adds the
 * user's hook programs to them. Deno's `--allow-run` replaces the permission
 * set's list instead of adding to it, so the flag names the set's programs
 * too; several `--allow-run` flags add up among themselves only.
 *
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };

/** The programs of the permission set, in its order. */
export const PERMITTED_PROGRAMS: readonly string[] = denoJson.permissions["image-transfer"].run;

/**
 * The `--allow-run` flag that keeps the permission set's programs and adds
 * `programs` (a path holding a comma cannot be named: Deno splits at commas).
 */
export function allowRunFlag(programs: readonly string[]): string {
  const extra = programs.filter((program) => !PERMITTED_PROGRAMS.includes(program));
  return `--allow-run=${[...PERMITTED_PROGRAMS, ...new Set(extra)].join(",")}`;
}

/** Whether this process may start `program`. */
export function mayRun(program: string): boolean {
  return Deno.permissions.querySync({ name: "run", command: program }).state === "granted";
}
