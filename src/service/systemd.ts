/**
 * Linux: a systemd unit, system-wide (starts at boot as the invoking user,
 * sandboxed) or per user.
 *
 * The folders the daemon writes and the paths it reads, from its config. The
 * hardened systemd unit makes the whole file system read-only for the daemon
 * except the folders it writes (`ReadWritePaths=`), so they must name every
 * place it writes; and it gives the daemon a private `/tmp`, which hides any
 * of these paths that lie there.
 *
 * @module
 */
import { posix } from "node:path";
import { fillTemplate, SYSTEMD_UNIT_TEMPLATE } from "./template.ts";
import { systemdCommandLine, systemdPathWord } from "./escape.ts";
import type {
  DaemonLaunch,
  PlanStep,
  RollbackStep,
  ServiceCheck,
  ServicePlan,
  ServiceTarget,
} from "./plan.ts";
import type { Config } from "../config/types.ts";
import { posixWord } from "../shell_words.ts";

/** The unit name, also used by `journalctl -u`. */
export const SYSTEMD_UNIT_NAME = "image-transfer.service";

/**
 * Tell whether systemd takes `name` in `User=` as written: its "relaxed" rule
 * (any valid UTF-8: non-ASCII names, and directory-service names such as
 * `zoe@lab.example.org` or `LAB\zoe`), less what it refuses or reads
 * otherwise: `:` and `/`, a leading `-`, only digits (a user id), `.` and
 * `..`, white space, control characters, `%` (a specifier) and a final `\`
 * (which would join the next line).
 */
function systemdAcceptsUser(name: string): boolean {
  return name.isWellFormed() && !/^$|^-|^[0-9]+$|^\.\.?$|\\$|[:/%\s\p{Cc}]/u.test(name);
}

/** Exists only while systemd runs as the init system (what `sd_booted()` tests). */
export const SYSTEMD_BOOTED_PATH = "/run/systemd/system";

/**
 * Tell where the unit file goes.
 *
 * @param target system scope: `/etc/systemd/system`; user scope: `<XDG_CONFIG_HOME>/systemd/user`
 * @returns absolute path of the unit file
 */
export function systemdUnitPath(target: ServiceTarget): string {
  if (target.scope === "system") return posix.join("/etc/systemd/system", SYSTEMD_UNIT_NAME);
  const configHome = target.configHome ?? posix.join(target.home, ".config");
  return posix.join(configHome, "systemd", "user", SYSTEMD_UNIT_NAME);
}

/**
 * Render the unit file text.
 *
 * The system unit orders itself after `network-online.target`, runs as
 * `User=` and is sandboxed: the file system is read-only except the daemon's
 * folders (`ReadWritePaths=`), no capabilities, a system call filter. The user
 * unit keeps the sandboxing a user's service manager can apply without user
 * namespaces (system call and socket filters, no new privileges), since some
 * distributions refuse those namespaces to unprivileged users and the unit
 * would then not start at all.
 *
 * @param target where and as whom
 * @param launch the daemon's argv and the folders it writes
 * @returns the unit file
 * @throws {Error} when a path or the user name cannot be written in a unit file
 */
export function renderSystemdUnit(target: ServiceTarget, launch: DaemonLaunch): string {
  const system = target.scope === "system";
  if (system && !systemdAcceptsUser(target.user)) {
    throw new Error(
      `Cannot write the systemd unit: the user name ${
        JSON.stringify(target.user)
      } is not one systemd accepts in User=; run the command as that account's login name`,
    );
  }
  const folders = outermostFolders(launch.ownFolders, launch.writtenFolders);
  const sharedTmp = hiddenByPrivateTmp(launch).length > 0;
  return fillTemplate(SYSTEMD_UNIT_TEMPLATE, {
    USER: system ? target.user : "",
    EXEC_START: systemdCommandLine(launch.argv),
    SERVICE: `systemd-${target.scope}`,
    READ_WRITE_PATHS: system ? folders.map((path) => systemdPathWord(path, "-")).join(" ") : "",
  }, {
    system,
    user: !system,
    privateTmp: system && !sharedTmp,
    sharedTmp: system && sharedTmp,
  });
}

/**
 * Tell which paths of `launch` a private `/tmp` would hide from the daemon:
 * the program and its files, the config, the folders it writes, the files and
 * folders it reads and the programs it starts (hooks, scheduled commands).
 * The system unit leaves `PrivateTmp=` out when there are any.
 *
 * @param launch the daemon's argv and folders
 * @returns the paths in `/tmp` or `/var/tmp`
 */
export function hiddenByPrivateTmp(launch: DaemonLaunch): string[] {
  return inTmpFolders([
    ...launch.argv.filter((arg) => posix.isAbsolute(arg)),
    launch.configPath,
    ...launch.ownFolders,
    ...launch.writtenFolders,
    ...launch.readPaths,
  ]);
}

/**
 * Plan the install: check that systemd runs, create the daemon's own folders
 * (system scope, owned by the service's user), write the unit, reload
 * systemd, enable and start it (restart it when it was already installed, so
 * a new binary or config takes effect). A failure disables and removes what
 * was written.
 *
 * @param target where and as whom
 * @param launch the daemon's argv, log file and folders
 * @param options `update`: a unit file is already there
 * @returns the plan
 */
export function planSystemdInstall(
  target: ServiceTarget,
  launch: DaemonLaunch,
  options: { update: boolean },
): ServicePlan {
  const path = systemdUnitPath(target);
  const systemctl = systemctlArgv(target);
  const owner = target.uid !== null && target.gid !== undefined && target.gid !== null
    ? { uid: target.uid, gid: target.gid }
    : undefined;
  const steps: PlanStep[] = [];
  if (target.scope === "system") {
    for (const folder of launch.ownFolders) steps.push({ kind: "mkdir", path: folder, owner });
  }
  steps.push(
    {
      kind: "write",
      file: { path, contents: renderSystemdUnit(target, launch), encoding: "utf-8" },
    },
    { kind: "run", command: { argv: [...systemctl, "daemon-reload"] } },
  );
  if (options.update) {
    steps.push({ kind: "run", command: { argv: [...systemctl, "enable", SYSTEMD_UNIT_NAME] } });
    steps.push({ kind: "run", command: { argv: [...systemctl, "restart", SYSTEMD_UNIT_NAME] } });
  } else {
    steps.push({
      kind: "run",
      command: { argv: [...systemctl, "enable", "--now", SYSTEMD_UNIT_NAME] },
    });
  }
  const rollback: RollbackStep[] = options.update
    ? [
      { kind: "restore" },
      { kind: "run", argv: [...systemctl, "daemon-reload"] },
      { kind: "run", argv: [...systemctl, "restart", SYSTEMD_UNIT_NAME] },
    ]
    : [
      { kind: "run", argv: [...systemctl, "disable", "--now", SYSTEMD_UNIT_NAME] },
      { kind: "restore" },
      { kind: "run", argv: [...systemctl, "daemon-reload"] },
    ];
  const user = target.scope === "user" ? " --user" : "";
  const notes = [
    `Status: systemctl${user} status image-transfer`,
    `Logs:   journalctl${user} -u image-transfer -f`,
    launch.logFile ? `Log file: ${launch.logFile}` : "Log file: none (log_file is empty)",
  ];
  const hidden = hiddenByPrivateTmp(launch);
  if (target.scope === "system" && hidden.length > 0) {
    const [lie, them] = hidden.length === 1 ? ["lies", "it"] : ["lie", "them"];
    notes.push(
      `Note: ${hidden.join(", ")} ${lie} in /tmp or /var/tmp, which a private /tmp would hide: ` +
        `the service shares the system's /tmp; move ${them} elsewhere for the full sandbox`,
    );
  }
  if (target.scope === "user") {
    notes.push(
      "A per-user service stops when you log out; to keep it running, allow lingering once:",
      `  sudo loginctl enable-linger ${posixWord(target.user)}`,
    );
  }
  return { servicePath: path, checks: systemdChecks(target), steps, rollback, notes };
}

/**
 * Plan the uninstall: stop and disable the unit, remove the file, reload systemd.
 *
 * @param target where the unit was installed
 * @returns the plan
 */
export function planSystemdUninstall(target: ServiceTarget): ServicePlan {
  const path = systemdUnitPath(target);
  const systemctl = systemctlArgv(target);
  return {
    servicePath: path,
    checks: [],
    steps: [
      {
        kind: "run",
        command: { argv: [...systemctl, "disable", "--now", SYSTEMD_UNIT_NAME], mayFail: true },
      },
      { kind: "remove", path },
      { kind: "run", command: { argv: [...systemctl, "daemon-reload"] } },
    ],
    rollback: [],
    notes: [],
  };
}

/** The systemd manager (the system's or the user's) must answer, and be the init system. */
function systemdChecks(target: ServiceTarget): ServiceCheck[] {
  const notInit = "systemd is not running as this machine's init system (process 1): this " +
    "happens in containers, in WSL without systemd, or with another init system, and nothing " +
    "would start the service. Enable systemd (WSL: put `[boot]` and `systemd=true` in " +
    "/etc/wsl.conf, then `wsl --shutdown`), or start `image-transfer run` with the supervisor " +
    "this machine uses";
  const booted: ServiceCheck = { kind: "exists", path: SYSTEMD_BOOTED_PATH, problem: notInit };
  if (target.scope === "system") {
    return [{
      kind: "run",
      argv: ["systemctl", "show", "--property=Version"],
      problem: `systemctl cannot reach systemd; ${notInit}`,
    }, booted];
  }
  return [{
    kind: "run",
    argv: ["systemctl", "--user", "show", "--property=Version"],
    problem: "systemctl --user cannot reach your systemd user manager. It runs in a login " +
      "session: log in as this user directly (not through su or sudo) or enable lingering with " +
      "`sudo loginctl enable-linger <user>`, or install system-wide with sudo. If systemd is " +
      "not this machine's init system (containers, WSL without systemd), no service can run",
  }, booted];
}

function systemctlArgv(target: ServiceTarget): string[] {
  return target.scope === "user" ? ["systemctl", "--user"] : ["systemctl"];
}

/** The folders a daemon writes, in two kinds, and the other paths it reads. */
export interface DaemonFolders {
  /** Its own: `state_dir` (ledger, lock) and the log file's folder (rotation writes next to it). */
  own: string[];
  /**
   * The other folders it writes: the destination of every `local` job and,
   * with `after_transfer: delete` or `move`, the watch folder it removes
   * sources from and the `archive_path` it moves them into.
   */
  written: string[];
  /**
   * The other local paths it reads: watch folders, the files the config names
   * (key, password, token and TLS files, files named in `ssh_options`) and the
   * programs it starts (`on_transfer`, `on_failure`, scheduled commands).
   */
  read: string[];
}

/** The `ssh_options` whose value names files ssh reads (the known-hosts ones may list several). */
const SSH_FILE_OPTIONS = new Set([
  "identityfile",
  "certificatefile",
  "userknownhostsfile",
  "globalknownhostsfile",
  "revokedhostkeys",
]);

/**
 * The absolute files the `ssh_options` of a job name (`IdentityFile=`,
 * `CertificateFile=`, `UserKnownHostsFile=`...); a `~`, `%` token or relative
 * name is ssh's to expand and left out.
 *
 * @param options `Key=Value` strings
 * @returns the absolute paths, as written
 */
export function sshOptionFiles(options: string[]): string[] {
  const files: string[] = [];
  for (const option of options) {
    const equals = option.indexOf("=");
    if (!SSH_FILE_OPTIONS.has(option.slice(0, equals).trim().toLowerCase())) continue;
    for (const [, quoted, bare] of option.slice(equals + 1).matchAll(/"([^"]*)"|(\S+)/g)) {
      const file = quoted ?? bare;
      if (file.startsWith("/")) files.push(file);
    }
  }
  return files;
}

/**
 * Find the folders the daemon of `config` writes, and what else it reads.
 *
 * @param config the loaded config (absolute paths; a hook's bare program name counts once the
 *   start checks have resolved it on `PATH`)
 * @returns each kind normalised and without duplicates
 */
export function daemonFolders(config: Config): DaemonFolders {
  const own = [config.state_dir];
  if (config.log_file) own.push(posix.dirname(config.log_file));
  const written: string[] = [];
  const read: string[] = [];
  for (const file of [config.status_token_file, config.status_tls_cert, config.status_tls_key]) {
    if (file) read.push(file);
  }
  for (const job of config.jobs) {
    if (job.transfer_method === "local") written.push(job.remote_base_path);
    if (job.after_transfer === "keep") read.push(job.watch_path);
    else written.push(job.watch_path);
    if (job.after_transfer === "move") written.push(job.archive_path);
    for (const file of [job.ssh_identity_file, job.ftp_password_file, job.ftp_ca_file]) {
      if (file) read.push(file);
    }
    read.push(...sshOptionFiles(job.ssh_options));
    // The programs it starts: the daemon refuses a config whose program it cannot see.
    const commands = job.schedules.filter((entry) => entry.action === "command");
    for (const argv of [job.on_transfer, job.on_failure, ...commands.map((e) => e.command)]) {
      if (argv.length > 0 && posix.isAbsolute(argv[0])) read.push(argv[0]);
    }
  }
  return { own: unique(own), written: unique(written), read: unique(read) };
}

/**
 * The paths among `paths` that a private `/tmp` (systemd's `PrivateTmp=`,
 * which covers `/tmp` and `/var/tmp`) would hide from the daemon.
 *
 * @param paths absolute POSIX paths
 * @returns those in `/tmp` or `/var/tmp`
 */
export function inTmpFolders(paths: string[]): string[] {
  return unique(paths).filter((path) => /^\/(var\/)?tmp(\/|$)/.test(path));
}

/**
 * Merge folder lists for `ReadWritePaths=`: sorted, without duplicates, and
 * without a folder that lies inside another listed one.
 *
 * @param lists absolute POSIX paths
 * @returns the folders to list
 */
export function outermostFolders(...lists: string[][]): string[] {
  const all = unique(lists.flat()).sort();
  return all.filter((path) =>
    !all.some((other) => other !== path && (other === "/" || path.startsWith(`${other}/`)))
  );
}

function unique(paths: string[]): string[] {
  return [...new Set(paths.map((path) => posix.normalize(path).replace(/(.)\/+$/, "$1")))];
}
