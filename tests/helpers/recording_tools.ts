/**
 * Programs that record each run and then do their work: a folder to put
 * first on the PATH of a test server's sessions, so a test can count what a
 * call starts there; and stand-ins that do what a test needs instead (a
 * `sync` that fails or waits).
 *
 * @module
 */
import { join } from "node:path";

/** A folder of recording programs; see {@linkcode recordingTools}. */
export interface RecordingTools {
  /** The folder, for the front of a PATH. */
  dir: string;
  /** The runs since the last call, one line each: the program's name and its arguments. */
  runs(): Promise<string[]>;
  remove(): Promise<void>;
}

/** Recording stand-ins for `tools` (each runs `/usr/bin/<tool>` after noting its run). */
export async function recordingTools(tools: string[]): Promise<RecordingTools> {
  const dir = await Deno.makeTempDir({ prefix: "itx-recording-" });
  await Deno.chmod(dir, 0o777);
  const log = join(dir, "runs");
  for (const tool of tools) {
    await Deno.writeTextFile(
      join(dir, tool),
      `#!/bin/sh\necho "${tool} $*" >>'${log}'\nexec /usr/bin/${tool} "$@"\n`,
    );
    await Deno.chmod(join(dir, tool), 0o755);
  }
  return {
    dir,
    async runs() {
      const text = await Deno.readTextFile(log).catch(() => "");
      await Deno.remove(log).catch(() => {});
      return text.split("\n").filter((line) => line !== "");
    },
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}

/**
 * Write stand-in programs into `dir` (made if missing): each `name` runs its `sh` body (without
 * the `#!/bin/sh` line), e.g. a `sync` that fails, waits or records. @returns `dir`, for the front
 * of a PATH
 */
export async function standInPrograms(
  dir: string,
  programs: Record<string, string>,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, body] of Object.entries(programs)) {
    await Deno.writeTextFile(join(dir, name), `#!/bin/sh\n${body}`);
    await Deno.chmod(join(dir, name), 0o755);
  }
  return dir;
}
