/**
 * Who the service runs as: the user who invoked the command, also when it
 * runs under sudo (then `SUDO_USER` and that user's home from `/etc/passwd`).
 *
 * @module
 */
import { homeDir } from "../config/paths.ts";
import type { ServiceOs } from "./plan.ts";

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
  return { user: name, uid, gid, home: homeDir(), viaSudo: false };
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
