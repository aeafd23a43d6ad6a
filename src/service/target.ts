/**
 * Decide where and as whom the service is installed, from the command-line
 * options and the invoking account, refusing combinations that cannot work.
 *
 * Who the service runs as: the user who invoked the command, also when it
 * runs under sudo (then `SUDO_USER` and that user's home from `/etc/passwd`).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { SERVICE_OSES, type ServiceOs, type ServiceTarget } from "./plan.ts";
import { homeDir } from "../config/paths.ts";

/** The service options shared by `install-service` and `uninstall-service`. */
export interface ServiceOptions {
  /** `--user`: a service in the user's own session instead of one that starts at boot. */
  user?: boolean;
  /** `--print`: show the plan, change nothing. */
  print?: boolean;
  /** `--root <dir>`: write under this folder and run no commands. */
  root?: string;
  /** `--os <os>`: plan for another OS (only with `--print` or `--root`). */
  os?: string;
  /** `--allow-root`: let a service that starts at boot run as root. */
  allowRoot?: boolean;
}

/** The resolved target, the account behind it, and warnings to show before anything happens. */
export interface ResolvedTarget {
  target: ServiceTarget;
  account: ServiceAccount;
  warnings: string[];
}

/**
 * Resolve the target OS, scope and account.
 *
 * The scope is `system` (starts at boot, nobody logged in) unless `--user`
 * is given; on macOS, `system` needs root (sudo), so without it the scope is
 * `user` (a LaunchAgent).
 *
 * @param options the command's options
 * @param purpose `install` also refuses a service that would run as root without `--allow-root`
 * @returns the target, the account and any warnings
 * @throws {UsageError} for an unknown `--os`, `--os` without `--print`/`--root`, `--user` under
 *   sudo, `--user` with `--allow-root`, a system-wide Linux install without root, or (installing, not only shown) a service
 *   running as root without `--allow-root`
 */
export function resolveServiceTarget(
  options: ServiceOptions,
  purpose: "install" | "uninstall",
): ResolvedTarget {
  const os = resolveOs(options);
  const account = invokingAccount(os);
  const dryRun = options.print === true || options.root !== undefined;
  const processIsRoot = Deno.build.os !== "windows" && Deno.uid() === 0;
  const scope = options.user || (os === "darwin" && !processIsRoot) ? "user" : "system";
  if (scope === "user" && account.viaSudo && os !== "windows") {
    const what = os === "darwin"
      ? "a LaunchAgent (it runs in your login session)"
      : "a per-user service";
    throw new UsageError(
      `Cannot install ${what} through sudo: run the command without sudo, as the user the ` +
        "service is for" + (os === "darwin" ? ", or drop --user for a LaunchDaemon" : ""),
    );
  }
  if (os === "linux" && scope === "system" && !processIsRoot && !dryRun) {
    throw new UsageError(
      "Cannot install a system-wide service: not running as root; run it with sudo, " +
        "or add --user for a per-user service",
    );
  }
  if (options.user && options.allowRoot) {
    throw new UsageError(
      "Cannot use --allow-root with --user: --allow-root lets a service that starts at boot run " +
        `as root, and --user puts it in your own login session, as ${account.user}; leave out ` +
        "one of them",
    );
  }
  const warnings: string[] = [];
  if (options.allowRoot && os !== "windows" && !isRootAccount(account)) {
    warnings.push(
      `--allow-root changes nothing here: the service runs as ${account.user}` +
        `${account.viaSudo ? " (who ran sudo)" : ""}, not as root`,
    );
  }
  if (purpose === "install" && os !== "windows" && scope === "user" && isRootAccount(account)) {
    // Before: a per-user service of root, running as root, without a word.
    warnings.push(
      "this per-user service is root's own, and runs as root" +
        (os === "linux" ? " (at boot only with `loginctl enable-linger root`)" : "") +
        ": prefer a system service run as an ordinary account: sudo install-service from that " +
        "account, without --user",
    );
  }
  if (purpose === "install" && os !== "windows" && scope === "system" && isRootAccount(account)) {
    if (!options.allowRoot && options.print === true) {
      // Only shown: say what installing it would need.
      warnings.push(
        "this service would run as root: installing it needs --allow-root, or install-service " +
          "with sudo from the account that should run the daemon",
      );
    } else if (!options.allowRoot) {
      throw new UsageError(
        "Cannot install the service to run as root: run install-service with sudo from the " +
          "account that should run the daemon (sudo keeps that account as the service's " +
          "user), or add --allow-root if it really must run as root",
      );
    } else {
      warnings.push(
        "the service will run as root (--allow-root): prefer an ordinary account that can read " +
          "the watch folder and the SSH key; install with sudo from that account",
      );
    }
  }
  const configHome = Deno.env.get("XDG_CONFIG_HOME");
  return {
    target: {
      os,
      scope,
      user: account.user,
      uid: account.uid,
      gid: account.gid,
      home: account.home,
      configHome: scope === "user" && configHome?.startsWith("/") ? configHome : undefined,
    },
    account,
    warnings,
  };
}

function resolveOs(options: ServiceOptions): ServiceOs {
  const here = Deno.build.os;
  if (options.os === undefined) {
    if ((SERVICE_OSES as readonly string[]).includes(here)) return here as ServiceOs;
    throw new UsageError(`Cannot install a service on ${here}: only Linux, macOS and Windows`);
  }
  if (!(SERVICE_OSES as readonly string[]).includes(options.os)) {
    throw new UsageError(
      `Cannot use --os ${options.os}: expected one of ${SERVICE_OSES.join(", ")}`,
    );
  }
  if (options.os !== here && options.print !== true && options.root === undefined) {
    throw new UsageError(
      `Cannot install a ${options.os} service on ${here}: --os only previews; ` +
        "add --print (or --root <dir>)",
    );
  }
  return options.os as ServiceOs;
}

/** The account a service is installed for. */
export interface ServiceAccount {
  /** Login name (`DOMAIN\name` on Windows when `USERDOMAIN` is set). */
  user: string;
  /** Numeric user id; `null` on Windows. */
  uid: number | null;
  /** Numeric primary group id; `null` on Windows or when unknown. */
  gid: number | null;
  home: string;
  /** The command runs as root through sudo on behalf of {@linkcode ServiceAccount.user}. */
  viaSudo: boolean;
}

/**
 * Find the invoking account from the environment.
 *
 * @param os the OS the service is for (Windows takes `USERDOMAIN\USERNAME`)
 * @returns the account
 * @throws {Error} when no user name is set, or the sudo user is not in `/etc/passwd`
 */
export function invokingAccount(os: ServiceOs): ServiceAccount {
  const env = (name: string) => Deno.env.get(name) || undefined;
  if (os === "windows") {
    const name = env("USERNAME") ?? env("USER") ?? env("LOGNAME") ??
      (Deno.build.os === "windows" ? undefined : passwdEntry(Deno.uid() ?? -1)?.name);
    if (!name) throw new Error("Cannot tell who you are: USERNAME is not set");
    const domain = env("USERDOMAIN");
    return {
      user: domain ? `${domain}\\${name}` : name,
      uid: null,
      gid: null,
      home: homeDir(),
      viaSudo: false,
    };
  }
  const uid = Deno.build.os === "windows" ? null : Deno.uid();
  const sudoUser = env("SUDO_USER");
  if (uid === 0 && sudoUser && sudoUser !== "root") {
    const entry = passwdEntry(sudoUser) ?? sudoEntry(sudoUser);
    return { user: sudoUser, uid: entry.uid, gid: entry.gid, home: entry.home, viaSudo: true };
  }
  const name = env("USER") ?? env("LOGNAME") ?? (uid === null ? undefined : passwdEntry(uid)?.name);
  if (!name) throw new Error("Cannot tell who you are: neither USER nor LOGNAME is set");
  const gid = Deno.build.os === "windows" ? null : Deno.gid();
  // Without HOME (a configuration tool's command, a service), the account's own from /etc/passwd.
  const home = env("HOME") ?? (uid === null ? undefined : passwdEntry(uid)?.home) ?? homeDir();
  return { user: name, uid, gid, home, viaSudo: false };
}

/**
 * Tell whether the service would run as root: the account is named `root`,
 * or its name has user id 0 in `/etc/passwd`.
 *
 * @param account the account
 * @returns true for root
 */
export function isRootAccount(account: ServiceAccount): boolean {
  return account.user === "root" || passwdEntry(account.user)?.uid === 0;
}

/**
 * The sudo user's ids and home from sudo's own variables, for accounts that
 * are not in `/etc/passwd` (every macOS user, directory-service accounts).
 */
function sudoEntry(name: string): PasswdEntry {
  const env = (key: string) => Deno.env.get(key) || undefined;
  const uid = Number(env("SUDO_UID"));
  const gid = Number(env("SUDO_GID"));
  // macOS's sudo keeps HOME; elsewhere it may be root's own.
  const home = env("HOME") && !["/root", "/var/root"].includes(env("HOME")!)
    ? env("HOME")
    : Deno.build.os === "darwin"
    ? `/Users/${name}`
    : undefined;
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || home === undefined) {
    throw new Error(
      `Cannot find the home folder of ${name} (SUDO_USER): not in /etc/passwd and not told by ` +
        "sudo; run the command as that user with `sudo -E`, or without sudo with --user",
    );
  }
  return { name, uid, gid, home };
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Look an account up in `/etc/passwd` by name or user id. */
function passwdEntry(key: string | number): PasswdEntry | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync("/etc/passwd");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 7) continue;
    const entry = {
      name: fields[0],
      uid: Number(fields[2]),
      gid: Number(fields[3]),
      home: fields[5],
    };
    if (typeof key === "number" ? entry.uid === key : entry.name === key) return entry;
  }
  return undefined;
}
