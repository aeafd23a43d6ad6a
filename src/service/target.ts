/**
 * Decide where and as whom the service is installed, from the command-line
 * options and the invoking account, refusing combinations that cannot work.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { invokingAccount, isRootAccount, type ServiceAccount } from "./account.ts";
import { SERVICE_OSES, type ServiceOs, type ServiceTarget } from "./plan.ts";

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
 *   sudo, a system-wide Linux install without root, or (installing) a service running as root
 *   without `--allow-root`
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
  const warnings: string[] = [];
  if (purpose === "install" && os !== "windows" && scope === "system" && isRootAccount(account)) {
    if (!options.allowRoot) {
      throw new UsageError(
        "Cannot install the service to run as root: run install-service with sudo from the " +
          "account that should run the daemon (sudo keeps that account as the service's " +
          "user), or add --allow-root if it really must run as root",
      );
    }
    warnings.push(
      "the service will run as root (--allow-root): prefer an ordinary account that can read " +
        "the watch folder and the SSH key; install with sudo from that account",
    );
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
