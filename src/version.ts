/**
 * What this program is: its version (from the one place it is written,
 * `deno.json`), the commit it was built from, the target it was built for
 * and the Deno runtime inside it. `--version` prints all four. Also the
 * runtime settings it always runs under ({@linkcode RUNTIME_FLAGS}).
 *
 * A release build records its commit in `src/build_info.json` before
 * compiling (the workflows write `GITHUB_SHA` there); running from source,
 * the commit is read from the checkout's `.git`.
 *
 * @module
 */
import { isAbsolute, join, resolve, win32 } from "node:path";
import { fileURLToPath } from "node:url";
import denoJson from "../deno.json" with { type: "json" };
import buildInfo from "./build_info.json" with { type: "json" };

/**
 * Tell whether `execPath` is the Deno runtime rather than a compiled
 * image-transfer binary.
 *
 * @param execPath `Deno.execPath()`
 * @returns true when its file name is `deno` or `deno.exe`
 */
export function isDenoRuntime(execPath: string): boolean {
  const name = win32.basename(execPath).toLowerCase();
  return name === "deno" || name === "deno.exe";
}

/**
 * The runtime's settings the program always runs under, after the permission
 * set (`-P=image-transfer`): in the `image-transfer` and `compile` tasks, the
 * compiled binaries, a service started from source and every CLI test (so a
 * setting the runtime no longer knows fails a test, not a user's start).
 * They keep a daemon that runs for months small: no code cache kept in
 * memory, V8 tuned for size, its built-ins not copied next to the heap, and
 * memory given back 2 s after the daemon goes quiet instead of about 30 s.
 * Each saves a few megabytes of resident memory; none measurably slows a
 * transfer (bench/RESULTS.md).
 */
export const RUNTIME_FLAGS: readonly string[] = [
  "--no-code-cache",
  "--v8-flags=--optimize-for-size,--no-short-builtin-calls,--gc-memory-reducer-start-delay-ms=2000",
];

/** The product version, e.g. `0.1.0`. */
export const VERSION: string = denoJson.version;

/** Everything `--version` reports. */
export interface VersionInfo {
  version: string;
  /** Full commit hash, or `unknown`. */
  commit: string;
  /** How the commit was found: baked into a build, or read from a source checkout. */
  commitSource: "build" | "source" | "none";
  /** Rust target triple, e.g. `x86_64-unknown-linux-gnu`. */
  target: string;
  /** Version of the Deno runtime running this program. */
  deno: string;
}

const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/**
 * Collect the version facts of the running program.
 *
 * @returns version, commit, target and Deno version
 */
export function versionInfo(): VersionInfo {
  const built = String(buildInfo.commit ?? "");
  let commit: string | undefined = COMMIT.test(built) ? built : undefined;
  let commitSource: VersionInfo["commitSource"] = commit ? "build" : "none";
  if (!commit && isDenoRuntime(Deno.execPath())) {
    commit = gitCommit(fileURLToPath(new URL("../", import.meta.url)));
    if (commit) commitSource = "source";
  }
  return {
    version: VERSION,
    commit: commit ?? "unknown",
    commitSource,
    target: Deno.build.target,
    deno: Deno.version.deno,
  };
}

/**
 * The text `--version` prints.
 *
 * @returns four lines: `image-transfer <version>`, then commit, target and Deno version
 */
export function versionText(): string {
  const info = versionInfo();
  const from = info.commitSource === "source" ? " (source checkout)" : "";
  return [
    `image-transfer ${info.version}`,
    `commit: ${info.commit}${from}`,
    `target: ${info.target}`,
    `deno: ${info.deno}`,
  ].join("\n");
}

/**
 * Read the checked-out commit of the repository at `repoRoot` from its
 * `.git` files (also a worktree's, and refs in `packed-refs`), without running git.
 *
 * @param repoRoot the checkout's top folder
 * @returns the commit hash, or `undefined` when it cannot be found
 */
export function gitCommit(repoRoot: string): string | undefined {
  const read = (path: string) => {
    try {
      return Deno.readTextFileSync(path).trim();
    } catch {
      return undefined;
    }
  };
  let gitDir = join(repoRoot, ".git");
  const pointer = /^gitdir: (.+)$/m.exec(read(gitDir) ?? "")?.[1];
  if (pointer) gitDir = isAbsolute(pointer) ? pointer : resolve(repoRoot, pointer);
  const head = read(join(gitDir, "HEAD"));
  if (!head) return undefined;
  if (COMMIT.test(head)) return head;
  const ref = /^ref: (refs\/\S+)$/.exec(head)?.[1];
  if (!ref) return undefined;
  const common = read(join(gitDir, "commondir"));
  const commonDir = common ? resolve(gitDir, common) : gitDir;
  for (const dir of new Set([gitDir, commonDir])) {
    const value = read(join(dir, ...ref.split("/")));
    if (value && COMMIT.test(value)) return value;
  }
  for (const line of (read(join(commonDir, "packed-refs")) ?? "").split("\n")) {
    const [hash, name] = line.split(" ");
    if (name === ref && COMMIT.test(hash)) return hash;
  }
  return undefined;
}
