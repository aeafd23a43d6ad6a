/**
 * `uninstall-service`: stop the service and remove what `install-service` wrote.
 *
 * @module
 */
import { Command } from "commander";
import { addServiceOptions } from "./install_service.ts";
import { planUninstall } from "../service/planner.ts";
import { applyPlan, underRoot } from "../service/apply.ts";
import { formatPlan } from "../service/format_plan.ts";
import { resolveServiceTarget, type ServiceOptions } from "../service/target.ts";

/**
 * Stop and remove the service. Says so, and changes nothing, when no service file is there.
 *
 * @param options the service options (as for `install-service`)
 * @throws {UsageError} for impossible option combinations
 * @throws {CommandError} when the service manager refuses
 */
export async function runUninstallService(options: ServiceOptions): Promise<void> {
  const { target } = resolveServiceTarget(options, "uninstall");
  const plan = planUninstall(target);
  const onDisk = underRoot(options.root, plan.servicePath);
  try {
    await Deno.lstat(onDisk);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    console.log(`Nothing to uninstall: ${onDisk} does not exist`);
    return;
  }
  if (options.print) {
    for (const line of formatPlan(plan)) console.log(line);
    return;
  }
  await applyPlan(plan, {
    root: options.root,
    log: (line) => console.log(line),
    warn: (line) => console.error(`warning: ${line}`),
  });
  console.log(`Uninstalled the service: removed ${onDisk}`);
}

/** The `uninstall-service` command. */
export function uninstallServiceCommand(): Command {
  return addServiceOptions(
    new Command("uninstall-service").description(
      "stop the service and remove what install-service wrote (use the same --user and sudo)",
    ),
  ).action(async (options: ServiceOptions) => {
    await runUninstallService(options);
  });
}
