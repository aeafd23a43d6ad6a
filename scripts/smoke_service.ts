/**
 * The real-service part of the smoke test (`scripts/smoke.ts --service`):
 * install the service with the OS's own manager, see a new FITS file arrive
 * through it with identical bytes, uninstall it and see its file gone. Needs
 * root through `sudo -n` on Linux and macOS (the service runs as the invoking
 * user), and an Administrator on Windows (a boot task logged on with S4U).
 *
 * The folders live under the home folder: the sandboxed Linux unit has a
 * private /tmp and could not see a watch folder there.
 *
 * @module
 */
import { join } from "node:path";
import {
  expectCode,
  fail,
  type Output,
  placeFits,
  product,
  sameBytes,
  type SmokeOptions,
  writeConfig,
} from "./smoke_helpers.ts";

/** How long the service may take to start and deliver the file. */
const ARRIVAL_TIMEOUT_MS = 180_000;

/** The service file install-service writes on this OS (system scope). */
function servicePath(home: string): string {
  switch (Deno.build.os) {
    case "linux":
      return "/etc/systemd/system/image-transfer.service";
    case "darwin":
      return "/Library/LaunchDaemons/com.image-transfer.daemon.plist";
    default:
      return join(home, ".config", "image-transfer", "ImageTransferDaemon.xml");
  }
}

/** What it takes to act as root: nothing on Windows or as root, else `sudo -n`. */
function rootPrefix(): string[] {
  if (Deno.build.os === "windows" || Deno.uid() === 0) return [];
  return ["sudo", "-n"];
}

async function run(argv: string[]): Promise<Output> {
  try {
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
  } catch (error) {
    return { code: -1, stdout: "", stderr: String(error) };
  }
}

/** What the service manager and the daemon's log say, for a failure message. */
async function diagnostics(logFile: string): Promise<string> {
  const sudo = rootPrefix();
  const commands: Record<string, string[][]> = {
    linux: [
      [...sudo, "systemctl", "status", "image-transfer", "--no-pager"],
      [...sudo, "journalctl", "-u", "image-transfer", "-n", "60", "--no-pager"],
    ],
    darwin: [
      [...sudo, "launchctl", "print", "system/com.image-transfer.daemon"],
      [...sudo, "tail", "-n", "60", "/Library/Logs/image-transfer.err.log"],
    ],
    windows: [["schtasks", "/Query", "/TN", "ImageTransferDaemon", "/V", "/FO", "LIST"]],
  };
  const parts: string[] = [];
  for (const argv of commands[Deno.build.os] ?? []) {
    const out = await run(argv);
    parts.push(`$ ${argv.join(" ")}\n${out.stdout}${out.stderr}`);
  }
  const log = await Deno.readTextFile(logFile).catch((error) => String(error));
  parts.push(`--- ${logFile}\n${log.slice(-6000)}`);
  return parts.join("\n");
}

/**
 * Install the service for real, see a file arrive through it, uninstall it.
 *
 * @param options the product
 * @throws {Error} when a step fails, with the service manager's view of it
 */
export async function serviceSmoke(options: SmokeOptions): Promise<void> {
  const home = Deno.env.get(Deno.build.os === "windows" ? "USERPROFILE" : "HOME") ??
    fail("no home folder");
  const work = await Deno.makeTempDir({ dir: home, prefix: ".itx-smoke-service-" });
  const config = join(work, "config.yaml");
  const logFile = join(work, "logs", "image_transfer.log");
  await Deno.mkdir(join(work, "camera"));
  // The destination exists before the service starts, as install-service asks: the
  // sandboxed Linux unit may write only into folders that exist when it starts.
  await Deno.mkdir(join(work, "server"));
  await writeConfig(config, {
    watch_path: join(work, "camera"),
    transfer_method: "local",
    remote_base_path: join(work, "server"),
    verify_transfer: "checksum",
    night_timezone: "UTC",
    stability_window_seconds: 1,
    state_dir: join(work, "state"),
    log_file: logFile,
  });
  const sudo = rootPrefix();
  // Root without sudo: the service would run as root, which must be asked for.
  const allowRoot = sudo.length === 0 && Deno.build.os !== "windows" ? ["--allow-root"] : [];
  let installed = false;
  try {
    const install = await product(
      options,
      ["-c", config, "install-service", ...allowRoot],
      sudo,
    );
    expectCode(install, 0, "install-service");
    installed = true;
    console.log(`ok: install-service installed ${servicePath(home)}`);
    const name = "service frame 'é' 007.fits";
    const bytes = await placeFits("cmos_iso_2024.fits", join(work, "camera", name));
    const arrived = join(work, "server", "20240315", name);
    const deadline = Date.now() + ARRIVAL_TIMEOUT_MS;
    while (!(await sameBytes(arrived, bytes))) {
      if (Date.now() > deadline) {
        fail(
          `the service did not deliver ${name} within ${
            ARRIVAL_TIMEOUT_MS / 1000
          } s\n${await diagnostics(logFile)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    console.log("ok: the service delivered a new FITS file with identical bytes");
    const again = await product(options, ["-c", config, "install-service", ...allowRoot], sudo);
    expectCode(again, 0, "install-service again (restart)");
    if (!/^Already installed, up to date: /m.test(again.stdout)) {
      fail(`install-service again did not find it installed:\n${again.stdout}`);
    }
    console.log("ok: install-service again restarts the installed service");
  } finally {
    if (installed) {
      const removed = await product(options, ["uninstall-service"], sudo);
      expectCode(removed, 0, "uninstall-service");
      const path = servicePath(home);
      if (await Deno.lstat(path).then(() => true, () => false)) {
        fail(`uninstall-service left ${path} behind`);
      }
      console.log(`ok: uninstall-service removed ${path}`);
    }
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
