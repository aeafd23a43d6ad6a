/**
 * Smoke test of a build on the machine it runs on: the same script proves a
 * release binary on its own OS (the release workflow) and the source through
 * `deno run` with the product's permission set (CI, and `tests/e2e/cli/smoke_test.ts`).
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-env --allow-run --allow-sys=uid \
 *   scripts/smoke.ts [--service] [--expect-commit <sha>] [--expect-target <triple>] \
 *   -- <program> [args…]
 * ```
 *
 * `<program> [args…]` starts the product: `dist/image-transfer`, or
 * `deno run -q -P=image-transfer --config deno.json main.ts`. It checks
 * `--version`, `init`, `config validate`, `run --once` moving real FITS files
 * with the local method into night folders with identical bytes (and not
 * again) and a hook run for each through the program launcher (the compiled
 * binary must carry the runtime feature it needs), how `doctor` watches a local folder (and, on Windows, the same
 * folder as a UNC path: polled), `install-service --print`; with `--service`, a real install →
 * start → a new file arrives → uninstall (needs root through `sudo -n` on
 * Linux and macOS, an Administrator on Windows). Exits 1 at the first failure.
 *
 * @module
 */
import { basename, join, resolve } from "node:path";
import denoJson from "../deno.json" with { type: "json" };
import {
  expectCode,
  fail,
  placeFits,
  product,
  sameBytes,
  type SmokeOptions,
  writeConfig,
} from "./smoke_helpers.ts";
import { serviceSmoke } from "./smoke_service.ts";

async function checkVersion(options: SmokeOptions): Promise<void> {
  const out = await product(options, ["--version"]);
  expectCode(out, 0, "--version");
  const lines = out.stdout.trim().split("\n");
  const target = options.expectTarget ?? Deno.build.target;
  const want = [`image-transfer ${denoJson.version}`, `target: ${target}`];
  for (const line of want) {
    if (!lines.includes(line)) fail(`--version lacks "${line}":\n${out.stdout}`);
  }
  const commit = lines.find((line) => line.startsWith("commit: "))?.split(" ")[1];
  if (
    options.expectCommit
      ? commit !== options.expectCommit
      : !/^([0-9a-f]{40}|unknown)$/.test(commit ?? "")
  ) {
    fail(`--version names commit ${commit}, expected ${options.expectCommit ?? "a hash"}`);
  }
  if (!lines.some((line) => /^deno: \d+\.\d+\.\d+/.test(line))) {
    fail(`--version lacks the Deno version:\n${out.stdout}`);
  }
  console.log(`ok: --version (${lines.join(", ")})`);
}

async function checkInit(options: SmokeOptions, work: string): Promise<void> {
  const file = join(work, "init", "config.yaml");
  expectCode(await product(options, ["-c", file, "init"]), 0, "init");
  const text = await Deno.readTextFile(file);
  if (!text.includes("watch_path:")) fail("init wrote no watch_path");
  // Untouched, its example values are refused; with one set, it validates.
  const untouched = await product(options, ["-c", file, "config", "validate"]);
  expectCode(untouched, 2, "validate init's untouched config");
  if (!untouched.stderr.includes("still holds the example values")) {
    fail(`validate did not name init's example values:\n${untouched.stderr}`);
  }
  await Deno.writeTextFile(file, text.replace(/^remote_host: .*$/m, "remote_host: archive"));
  expectCode(
    await product(options, ["-c", file, "config", "validate"]),
    0,
    "validate init's config with a value set",
  );
  console.log("ok: init writes a config that validates once its example values are set");
}

/** Send real FITS files with `run --once`, check the bytes at the destination, and no resend. */
async function checkRunOnce(options: SmokeOptions, work: string): Promise<void> {
  const watch = join(work, "camera");
  const dest = join(work, "server");
  const config = join(work, "config.yaml");
  const log = join(work, "logs", "image_transfer.log");
  // A hook that exists everywhere: the product's own program, asked its version. It runs
  // through the program launcher (a worker that may start only the config's programs).
  const program = options.product[0];
  const hook = /[\\/]/.test(program) ? resolve(program) : program;
  await writeConfig(config, {
    watch_path: watch,
    transfer_method: "local",
    on_transfer: [hook, "--version"],
    remote_base_path: dest,
    verify_transfer: "checksum",
    night_timezone: "UTC",
    stability_window_seconds: 0.5,
    state_dir: join(work, "state"),
    log_file: log,
  });
  expectCode(await product(options, ["-c", config, "config", "validate"]), 0, "config validate");
  const files: Record<string, string> = {
    "M42 frame 001.fits": "cmos_iso_2024.fits",
    "night 1/ngc 7000 'é' $x.fits": "old_ccd_1998.fits",
    "night 1/flat-V #2.fits": "fpack_style.fits",
  };
  const sent = new Map<string, Uint8Array>();
  for (const [name, fixture] of Object.entries(files)) {
    sent.set(name, await placeFits(fixture, join(watch, ...name.split("/"))));
  }
  await Deno.writeTextFile(join(watch, "notes.txt"), "not an image\n");
  const first = await product(options, ["-c", config, "run", "--once"]);
  expectCode(first, 0, "run --once");
  for (const [name, bytes] of sent) {
    const arrived = join(dest, "20240315", ...name.split("/"));
    if (!(await sameBytes(arrived, bytes))) {
      fail(`run --once: ${arrived} is missing or differs\n${first.stderr}`);
    }
  }
  if (await exists(join(dest, "20240315", "notes.txt"))) fail("run --once sent notes.txt");
  const logged = await Deno.readTextFile(log);
  const hooks = logged.split("\n").filter((line) =>
    /Hook on_transfer of job \S+ for .* done/.test(line)
  );
  if (hooks.length !== sent.size) {
    fail(
      `run --once: ${hooks.length} hook run(s) logged as done, expected ${sent.size}\n${logged}`,
    );
  }
  if (logged.includes("Cannot confine")) fail(`run --once: programs were not confined\n${logged}`);
  // The local copier's worker module is in the binary (Linux copies small files with it).
  if (logged.includes("without their own thread")) {
    fail(`run --once: the local copier did not start\n${logged}`);
  }
  const before = await countFiles(dest);
  expectCode(await product(options, ["-c", config, "run", "--once"]), 0, "second run --once");
  if ((await countFiles(dest)) !== before) fail("the second run --once sent files again");
  console.log(
    `ok: run --once sent ${sent.size} FITS files into 20240315/ with identical bytes; ` +
      `the hook ran for each, through the program launcher`,
  );
}

/**
 * How `doctor` says a folder is watched: a folder on this machine's own disk by
 * its file events alone (the start-up reading of the mount table, `/sbin/mount`
 * on macOS and `net use` on Windows, must not take it for a share); on Windows
 * the same folder reached as a UNC path (`\\localhost\C$\…`) as a network
 * share, polled on top of its events.
 */
async function checkWatchModes(options: SmokeOptions, work: string): Promise<void> {
  const watch = join(work, "camera");
  const dest = join(work, "server");
  const watched = async (folder: string): Promise<string> => {
    const out = await product(options, ["doctor", "--watch", folder, "--to", dest]);
    expectCode(out, 0, `doctor --watch ${folder}`);
    const line = out.stdout.split("\n").find((l) => l.includes("watching:"));
    if (!line) fail(`doctor --watch ${folder} says nothing of how it watches:\n${out.stdout}`);
    return line!.slice(line!.indexOf("watching:"));
  };
  const local = await watched(watch);
  if (!/watching: file events \(/.test(local) || /poll/.test(local)) {
    fail(`doctor takes a local folder for a share: ${local}`);
  }
  console.log(`ok: a local folder is watched by its events (${local})`);
  if (Deno.build.os !== "windows") return;
  const drive = /^([A-Za-z]):\\(.*)$/.exec(watch);
  if (!drive) fail(`the work folder ${watch} is not on a drive letter`);
  const unc = `\\\\localhost\\${drive![1]}$\\${drive![2]}`;
  const share = await watched(unc);
  if (!/poll/.test(share)) fail(`doctor does not poll the UNC path ${unc}: ${share}`);
  console.log(`ok: a UNC path is polled (${share})`);
}

async function checkServicePrint(options: SmokeOptions, work: string): Promise<void> {
  const config = join(work, "config.yaml");
  const file = { linux: "image-transfer.service", darwin: "com.image-transfer.daemon.plist" }[
    Deno.build.os as string
  ] ?? "ImageTransferDaemon.xml";
  const root = Deno.build.os !== "windows" && Deno.uid() === 0;
  const viaSudo = root && Boolean(Deno.env.get("SUDO_USER"));
  for (const scope of [[], ["--user"]]) {
    const args = ["-c", config, "install-service", "--print", ...scope];
    // Run by root without sudo, the daemon would run as root: that needs saying so.
    if (root && !viaSudo && scope.length === 0) args.push("--allow-root");
    const out = await product(options, args);
    if (viaSudo && scope.length > 0) {
      // A service in the user's own session cannot be set up through sudo: refused, plainly.
      expectCode(out, 2, args.join(" "));
      if (!/through sudo/.test(out.stderr)) fail(`--user under sudo: ${out.stderr}`);
      continue;
    }
    expectCode(out, 0, args.join(" "));
    const written = /^would write (.*) \(UTF-(8|16LE with BOM)\):$/m.exec(out.stdout)?.[1];
    if (!written || basename(written.replaceAll("\\", "/")) !== file) {
      fail(`install-service --print ${scope.join(" ")} writes no ${file}:\n${out.stdout}`);
    }
    if (!/^would check: /m.test(out.stdout)) fail("install-service --print shows no checks");
  }
  const user = viaSudo ? "--user refused under sudo" : "--user";
  console.log(`ok: install-service --print (system and ${user}) shows ${file}`);
}

/**
 * A release binary copied under the old tool's service program name takes
 * its `--install` (here with `--print`) and `--status`. Needs a binary: the
 * source through `deno run` has no name of its own.
 */
async function checkOldServiceName(options: SmokeOptions, work: string): Promise<void> {
  if (options.product.length !== 1) {
    console.log("not applicable: the old service program's name (a release binary only)");
    return;
  }
  const exe = Deno.build.os === "windows" ? ".exe" : "";
  const copy = join(work, `image-transfer-service${exe}`);
  await Deno.copyFile(options.product[0], copy);
  if (Deno.build.os !== "windows") await Deno.chmod(copy, 0o755);
  const old = { ...options, product: [copy] };
  const config = join(work, "config.yaml");
  const root = Deno.build.os !== "windows" && Deno.uid() === 0;
  const args = ["-c", config, "--install", "--print", "--user"];
  // Under sudo a service in the user's own session is refused: the system one runs as that user.
  if (root && Deno.env.get("SUDO_USER")) args.splice(args.indexOf("--user"), 1);
  const printed = await product(old, args);
  expectCode(printed, 0, `image-transfer-service ${args.join(" ")}`);
  if (!/^would write .*:$/m.test(printed.stdout)) {
    fail(`image-transfer-service --install --print wrote no plan:\n${printed.stdout}`);
  }
  const status = await product(old, ["-c", config, "--status"]);
  expectCode(status, 0, "image-transfer-service --status");
  console.log("ok: as image-transfer-service, --install (--print) and --status work");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for await (const entry of Deno.readDir(dir)) {
    n += entry.isDirectory ? await countFiles(join(dir, entry.name)) : 1;
  }
  return n;
}

/**
 * Run every check.
 *
 * @param options the product and what to check
 * @throws {Error} at the first check that fails
 */
export async function smoke(options: SmokeOptions): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "itx-smoke-" });
  try {
    await checkVersion(options);
    await checkInit(options, work);
    await checkRunOnce(options, work);
    await checkWatchModes(options, work);
    await checkServicePrint(options, work);
    await checkOldServiceName(options, work);
    if (options.service) await serviceSmoke(options);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** Parse `[--service] [--expect-commit <sha>] [--expect-target <triple>] -- <program> [args…]`. */
export function parseArgs(args: string[]): SmokeOptions {
  const split = args.indexOf("--");
  const own = split < 0 ? [] : args.slice(0, split);
  const product = split < 0 ? args : args.slice(split + 1);
  const options: SmokeOptions = { product, service: false };
  for (let i = 0; i < own.length; i++) {
    if (own[i] === "--service") options.service = true;
    else if (own[i] === "--expect-commit" && own[i + 1]) options.expectCommit = own[++i];
    else if (own[i] === "--expect-target" && own[i + 1]) options.expectTarget = own[++i];
    else fail(`unknown option ${own[i]}`);
  }
  if (product.length === 0) fail("no product command after --");
  return options;
}

if (import.meta.main) {
  try {
    await smoke(parseArgs(Deno.args));
    console.log("smoke test passed");
  } catch (error) {
    console.error(`smoke test FAILED: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
