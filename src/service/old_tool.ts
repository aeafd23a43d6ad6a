/**
 * The old tool's services (`image-transfer-service --install`), wherever they are: in either
 * scope (system: at boot; user: in a login session) and, looked for too, in other accounts'
 * homes. An install removes the ones it has the rights to and refuses while another is left,
 * since that daemon and the new one would watch the same folders and send the same files
 * (duplicates at the destination).
 *
 * macOS: the old label `com.observatory.imagetransfer`, as a LaunchAgent (the old tool's way,
 * without sudo) or a LaunchDaemon. Linux: an `image-transfer.service` this program did not
 * write, system-wide (the old tool's way, with sudo) or per user; the one at the new unit's own
 * path is overwritten by the install, not looked for here. Windows: the task has the new one's
 * name, in Task Scheduler's one folder whoever registered it, and is replaced in place.
 *
 * @module
 */
import { posix } from "node:path";
import { posixWord } from "../shell_words.ts";
import { underRoot } from "./apply.ts";
import { launchdPlistPath } from "./launchd.ts";
import type { PlanStep, ServiceTarget } from "./plan.ts";
import { SYSTEMD_UNIT_NAME, systemdUnitPath } from "./systemd.ts";

/** The old tool's launchd label. */
export const OLD_LAUNCHD_LABEL = "com.observatory.imagetransfer";

/** What marks a unit file written by this program (the old tool's has no such line). */
const OURS = /written by `image-transfer install-service`/i;

/** Where the homes of other accounts are looked for old per-user services. */
const HOMES = { darwin: "/Users", linux: "/home" } as const;

/** One of the old tool's services, found on this machine. */
export interface OldService {
  /** Its file, as on the machine (before any `--root` prefix). */
  path: string;
  /** `system`: starts at boot; `user`: runs in the login session of its account. */
  scope: "system" | "user";
  /** A per-user one of another account than the new service's (its home's folder name). */
  otherAccount?: string;
  /** The owner of its file (a per-user one's account), `null` when unknown. */
  uid: number | null;
}

/**
 * Find the old tool's services of `target`'s OS: in both scopes of its account, and the
 * per-user ones in the other homes of `/Users` (macOS) or `/home` (Linux) this process can read.
 *
 * @param target the new service's OS, scope and account
 * @param root the `--root` prefix they are looked for under, if any
 * @returns each one found (none on Windows)
 */
export async function findOldServices(
  target: ServiceTarget,
  root: string | undefined,
): Promise<OldService[]> {
  if (target.os === "windows") return [];
  const own = oldServicePath(target, target.scope);
  const places: Omit<OldService, "uid">[] = [
    // Linux: the one at the new unit's path is overwritten by the install itself.
    ...(target.os === "darwin" ? [{ path: own, scope: target.scope }] : []),
    { path: oldServicePath(target, otherScope(target)), scope: otherScope(target) },
  ];
  for (const name of await folderNames(underRoot(root, HOMES[target.os]))) {
    const home = posix.join(HOMES[target.os], name);
    if (home === posix.normalize(target.home).replace(/(.)\/+$/, "$1")) continue;
    const path = oldServicePath({ ...target, home, configHome: undefined }, "user");
    places.push({ path, scope: "user", otherAccount: name });
  }
  const found: OldService[] = [];
  for (const place of places) {
    const uid = await oldServiceOwner(target, underRoot(root, place.path));
    if (uid !== undefined) found.push({ ...place, uid });
  }
  return found;
}

/**
 * Tell whether installing for `target` may stop and remove `old`: one of its own account in
 * the same scope, or in the other scope when the install runs as root (a system install
 * always does); never another account's, which is that account's to remove.
 *
 * @param old the old service
 * @param target the new service
 * @param processIsRoot this process runs as root
 * @returns true when the install replaces it
 */
export function canRemove(old: OldService, target: ServiceTarget, processIsRoot: boolean): boolean {
  if (old.otherAccount !== undefined) return false;
  return old.scope === "user" || target.scope === "system" || processIsRoot;
}

/**
 * Plan stopping and removing `old`, before the new service is loaded. A failure to stop it
 * (not running, an older service manager) is a warning.
 *
 * @param old a service {@linkcode canRemove} allows
 * @param target the new service
 * @returns the steps
 */
export function removalSteps(old: OldService, target: ServiceTarget): PlanStep[] {
  const path = old.path;
  if (target.os === "darwin") {
    // Removed only when of the new service's own account: in that account's session.
    const uid = target.uid ?? old.uid ?? 0;
    const domain = old.scope === "system" ? "system" : `gui/${uid}`;
    // Root unloads an agent in its user's session through `asuser`.
    const unload = ["launchctl", "unload", "-w", path];
    const asUser = old.scope === "user" && target.scope === "system";
    const fallback = asUser ? ["launchctl", "asuser", String(uid), ...unload] : unload;
    return [
      {
        kind: "run",
        command: {
          argv: ["launchctl", "bootout", `${domain}/${OLD_LAUNCHD_LABEL}`],
          fallback,
          mayFail: true,
        },
      },
      { kind: "remove", path },
    ];
  }
  // Linux: a user unit of the account, from root (a system install), through its user manager
  // (`--machine=user@.host`, systemd 248 and later; else as the user, with `runuser`).
  const fromRoot = old.scope === "user" && target.scope === "system";
  const systemctl = old.scope === "system"
    ? ["systemctl"]
    : fromRoot
    ? ["systemctl", "--user", `--machine=${target.user}@.host`]
    : ["systemctl", "--user"];
  const stop = ["disable", "--now", SYSTEMD_UNIT_NAME];
  const runtime = `XDG_RUNTIME_DIR=/run/user/${target.uid ?? old.uid}`;
  const asUser = ["runuser", "-u", target.user, "--", "env", runtime, "systemctl", "--user"];
  return [
    {
      kind: "run",
      command: {
        argv: [...systemctl, ...stop],
        ...(fromRoot ? { fallback: [...asUser, ...stop] } : {}),
        mayFail: true,
      },
    },
    { kind: "remove", path },
    { kind: "run", command: { argv: [...systemctl, "daemon-reload"], mayFail: true } },
  ];
}

/**
 * Say why the install is refused while `left` are installed, with the commands that stop and
 * remove each.
 *
 * @param left the old services the install may not remove
 * @param os their OS
 * @returns the message
 */
export function leftOldServicesProblem(left: OldService[], os: "darwin" | "linux"): string {
  const lines = left.map((old) => {
    const whose = old.otherAccount !== undefined
      ? `the account ${old.otherAccount}'s`
      : old.scope === "system"
      ? "a system-wide one, which only root may remove"
      : "a per-user one";
    const commands = manualCommands(old, os).map((argv) => `\`${argv.map(posixWord).join(" ")}\``);
    return `  ${old.path} (${whose}): ${commands.join(", then ")}`;
  });
  return "the old tool's service is still installed where this install does not remove it; " +
    "it and the new service would watch the same folders and send the same files twice (to the " +
    "same night folders). Stop and remove it first, then run install-service again:\n" +
    lines.join("\n");
}

/** The commands a person types to stop and remove `old`. */
function manualCommands(old: OldService, os: "darwin" | "linux"): string[][] {
  const rm = ["sudo", "rm", old.path];
  if (os === "darwin") {
    const domain = old.scope === "system" ? "system" : `gui/${old.uid ?? 0}`;
    return [["sudo", "launchctl", "bootout", `${domain}/${OLD_LAUNCHD_LABEL}`], rm];
  }
  if (old.scope === "system") {
    return [
      ["sudo", "systemctl", "disable", "--now", SYSTEMD_UNIT_NAME],
      rm,
      ["sudo", "systemctl", "daemon-reload"],
    ];
  }
  const systemctl = ["sudo", "systemctl", "--user", `--machine=${old.otherAccount}@.host`];
  return [[...systemctl, "disable", "--now", SYSTEMD_UNIT_NAME], rm];
}

/** Where the old tool's service of `target`'s account would be in `scope`. */
function oldServicePath(target: ServiceTarget, scope: "system" | "user"): string {
  const there = { ...target, scope };
  if (target.os === "linux") return systemdUnitPath(there);
  return posix.join(posix.dirname(launchdPlistPath(there)), `${OLD_LAUNCHD_LABEL}.plist`);
}

function otherScope(target: ServiceTarget): "system" | "user" {
  return target.scope === "system" ? "user" : "system";
}

/**
 * The owner of the old tool's service file at `file`; `undefined` when there is none (on
 * Linux: none this program did not write) or it cannot be read.
 */
async function oldServiceOwner(
  target: ServiceTarget,
  file: string,
): Promise<number | null | undefined> {
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) return undefined;
    if (target.os === "linux" && OURS.test(await Deno.readTextFile(file))) return undefined;
    return info.uid;
  } catch {
    return undefined; // Missing, or in a home this process may not read.
  }
}

/** The names of the folders in `dir`; none when it cannot be read. */
async function folderNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) if (entry.isDirectory) names.push(entry.name);
  } catch {
    return [];
  }
  return names.sort();
}
