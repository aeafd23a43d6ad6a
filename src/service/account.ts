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
      (Deno.build.os === "windows" ? undefined : passwdName(Deno.uid() ?? -1));
    if (!name) throw new Error("Cannot tell who you are: USERNAME is not set");
    const domain = env("USERDOMAIN");
    return {
      user: domain ? `${domain}\\${name}` : name,
      uid: null,
      home: homeDir(),
      viaSudo: false,
    };
  }
  const uid = Deno.build.os === "windows" ? null : Deno.uid();
  const sudoUser = env("SUDO_USER");
  if (uid === 0 && sudoUser && sudoUser !== "root") {
    const entry = passwdEntry(sudoUser);
    return { user: sudoUser, uid: entry.uid, home: entry.home, viaSudo: true };
  }
  const name = env("USER") ?? env("LOGNAME") ?? (uid === null ? undefined : passwdName(uid));
  if (!name) throw new Error("Cannot tell who you are: neither USER nor LOGNAME is set");
  return { user: name, uid, home: homeDir(), viaSudo: false };
}

/** The `/etc/passwd` entries as [name, uid, home]. */
function passwdEntries(): [string, number, string][] {
  let text: string;
  try {
    text = Deno.readTextFileSync("/etc/passwd");
  } catch {
    return [];
  }
  return text.split("\n").map((line) => line.split(":")).filter((fields) => fields.length >= 7)
    .map((fields) => [fields[0], Number(fields[2]), fields[5]]);
}

/** The login name of `uid`, if `/etc/passwd` has it. */
function passwdName(uid: number): string | undefined {
  return passwdEntries().find(([, id]) => id === uid)?.[0];
}

/** Look `name` up in `/etc/passwd`. */
function passwdEntry(name: string): { uid: number; home: string } {
  const entry = passwdEntries().find(([entryName]) => entryName === name);
  if (entry) return { uid: entry[1], home: entry[2] };
  throw new Error(
    `Cannot find the home folder of ${name} (SUDO_USER): not in /etc/passwd; ` +
      "run the command without sudo, as that user, with --user",
  );
}
