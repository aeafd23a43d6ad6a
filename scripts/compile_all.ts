/**
 * Build one self-contained binary per OS and architecture into `dist/`:
 * `dist/image-transfer-<target>` (`.exe` on Windows), each with the
 * project's permission set baked in (`-P=image-transfer`, never `-A`).
 *
 * Run it as `deno task compile:all`, which grants only what it needs:
 * `--allow-run=deno --allow-read --allow-write=dist`. Pass target names to
 * build only those, e.g. `deno task compile:all x86_64-unknown-linux-gnu`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { RUNTIME_FLAGS } from "../src/version.ts";

/** Every target a release ships, as `deno compile --target` names it. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
  "aarch64-pc-windows-msvc",
];

/** The repository root (this script lives in `scripts/`). */
const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * Tell where the binary for `target` goes.
 *
 * @param target a name from {@linkcode TARGETS}
 * @returns `dist/image-transfer-<target>`, with `.exe` for Windows targets
 */
export function outputName(target: string): string {
  return `dist/image-transfer-${target}${target.includes("windows") ? ".exe" : ""}`;
}

/**
 * Build the `deno compile` arguments for one target.
 *
 * @param target a name from {@linkcode TARGETS}
 * @returns the arguments after `deno`
 */
export function compileArgs(target: string): string[] {
  return [
    "compile",
    "-q",
    "-P=image-transfer",
    ...RUNTIME_FLAGS,
    "--config",
    join(REPO_ROOT, "deno.json"),
    "--target",
    target,
    // The program launcher's worker gets its own permissions (deno.json → unstable, too).
    "--unstable-worker-options",
    // The watcher, the program launcher and the local copier run in workers; worker modules must
    // be included by hand.
    "--include",
    join(REPO_ROOT, "src", "watch", "watch_worker.ts"),
    "--include",
    join(REPO_ROOT, "src", "process", "launcher_worker.ts"),
    "--include",
    join(REPO_ROOT, "src", "transfer", "local", "copier_worker.ts"),
    "--output",
    join(REPO_ROOT, outputName(target)),
    join(REPO_ROOT, "main.ts"),
  ];
}

/**
 * Compile every requested target, one after the other.
 *
 * @param targets which targets to build (default: all)
 * @returns the exit code: 0 when all succeeded, 1 otherwise
 */
export async function compileAll(targets: readonly string[] = TARGETS): Promise<number> {
  const unknown = targets.filter((target) => !TARGETS.includes(target));
  if (unknown.length > 0) {
    console.error(
      `error: Cannot compile for ${unknown.join(", ")}: unknown target; use ${TARGETS.join(", ")}`,
    );
    return 1;
  }
  await Deno.mkdir(join(REPO_ROOT, "dist"), { recursive: true });
  for (const target of targets) {
    const args = compileArgs(target);
    console.log(`deno ${args.join(" ")}`);
    const status = await new Deno.Command("deno", { args, stdin: "null" }).spawn().status;
    if (!status.success) {
      console.error(`error: Cannot compile for ${target}: deno compile exited with ${status.code}`);
      return 1;
    }
    console.log(`built ${outputName(target)}`);
  }
  return 0;
}

if (import.meta.main) {
  Deno.exit(await compileAll(Deno.args.length > 0 ? Deno.args : TARGETS));
}
