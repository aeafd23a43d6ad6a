/**
 * Pick the per-OS planner: systemd on Linux, launchd on macOS, Task Scheduler on Windows.
 *
 * @module
 */
import type { DaemonLaunch, ServicePlan, ServiceTarget } from "./plan.ts";
import { planSystemdInstall, planSystemdUninstall, systemdUnitPath } from "./systemd.ts";
import { launchdPlistPath, planLaunchdInstall, planLaunchdUninstall } from "./launchd.ts";
import { planTaskInstall, planTaskUninstall, taskXmlPath } from "./task_scheduler.ts";

/**
 * Tell which file the service of `target` lives in.
 *
 * @param target where and as whom
 * @returns absolute path of the unit, plist or task XML
 */
export function servicePath(target: ServiceTarget): string {
  switch (target.os) {
    case "linux":
      return systemdUnitPath(target);
    case "darwin":
      return launchdPlistPath(target);
    case "windows":
      return taskXmlPath(target);
  }
}

/**
 * Plan installing (or updating) the service.
 *
 * @param target where and as whom
 * @param launch the daemon's argv and log file
 * @param options `update`: the service file already exists; `replacesOld`
 *   (macOS): the old tool's plist, under its own label, is there to remove
 * @returns the plan
 * @throws {Error} when a path cannot be written in the service file format
 */
export function planInstall(
  target: ServiceTarget,
  launch: DaemonLaunch,
  options: { update: boolean; replacesOld?: boolean },
): ServicePlan {
  switch (target.os) {
    case "linux":
      return planSystemdInstall(target, launch, options);
    case "darwin":
      return planLaunchdInstall(target, launch, options);
    case "windows":
      return planTaskInstall(target, launch, options);
  }
}

/**
 * Plan removing the service.
 *
 * @param target where and as whom it was installed
 * @returns the plan
 */
export function planUninstall(target: ServiceTarget): ServicePlan {
  switch (target.os) {
    case "linux":
      return planSystemdUninstall(target);
    case "darwin":
      return planLaunchdUninstall(target);
    case "windows":
      return planTaskUninstall(target);
  }
}
