/**
 * Decide where and as whom the service is installed, from the command-line
 * options and the invoking account, refusing combinations that cannot work.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { invokingAccount, type ServiceAccount } from "./account.ts";
import { SERVICE_OSES, type ServiceOs, type ServiceTarget } from "./plan.ts";

/** The service options shared by `install-service` and `uninstall-service`. */
export interface ServiceOptions {
  /** `--user`: a per-user systemd unit (Linux). */
  user?: boolean;
  /** `--print`: show the plan, change nothing. */
  print?: boolean;
  /** `--root <dir>`: write under this folder and run no commands. */
  root?: string;
  /** `--os <os>`: plan for another OS (only with `--print` or `--root`). */
  os?: string;
}

/**
 * Resolve the target OS, scope and account.
 *
 * @param options the command's options
 * @returns the target and the account behind it
 * @throws {UsageError} for an unknown `--os`, `--os` without `--print`/`--root`, `--user` under
 *   sudo, or a system-wide install without root
 */
export function resolveServiceTarget(
  options: ServiceOptions,
): { target: ServiceTarget; account: ServiceAccount } {
  const os = resolveOs(options);
  const account = invokingAccount(os);
  const dryRun = options.print === true || options.root !== undefined;
  const scope = os === "linux" && !options.user ? "system" : "user";
  if (os === "linux" && scope === "user" && account.viaSudo) {
    throw new UsageError(
      "Cannot install a per-user service through sudo: run the command without sudo, " +
        "as the user the service is for",
    );
  }
  if (os === "darwin" && account.viaSudo) {
    throw new UsageError(
      "Cannot install a launchd agent through sudo: run the command without sudo, " +
        "as the user the service is for",
    );
  }
  if (os === "linux" && scope === "system" && account.uid !== 0 && !account.viaSudo && !dryRun) {
    throw new UsageError(
      "Cannot install a system-wide service: not running as root; run it with sudo, " +
        "or add --user for a per-user service",
    );
  }
  const configHome = Deno.env.get("XDG_CONFIG_HOME");
  return {
    target: {
      os,
      scope,
      user: account.user,
      uid: account.uid,
      home: account.home,
      configHome: scope === "user" && configHome?.startsWith("/") ? configHome : undefined,
    },
    account,
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
