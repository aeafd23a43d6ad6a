/**
 * The notes `install-service` prints after an install (and `--print` after the plan): how to see
 * status and logs (the plan's notes), and each folder the sandboxed systemd service must write that
 * is not there.
 *
 * @module
 */
import { underRoot } from "../service/apply.ts";
import { pathExists } from "../config/paths.ts";
import type { DaemonLaunch, ServicePlan, ServiceTarget } from "../service/plan.ts";

/**
 * The lines an install prints after it: the plan's notes, then each folder the sandboxed system
 * service must write that does not exist, with what to do. With `--root` (`root`: a system image
 * or package built under that folder) the folders are looked for there, and a missing one is to
 * be made on the system installed from it; nothing here is looked at.
 */
export async function installNotes(
  target: ServiceTarget,
  launch: DaemonLaunch,
  plan: ServicePlan,
  root: string | undefined,
): Promise<string[]> {
  const notes = [...plan.notes];
  if (target.os !== "linux" || target.scope !== "system") return notes;
  const why = "the service may write only into folders that exist when it starts";
  for (const folder of launch.writtenFolders) {
    const path = underRoot(root, folder);
    if (await pathExists(path)) continue;
    const writable = `writable by ${target.user}`;
    notes.push(
      root === undefined
        ? `Note: the folder ${folder} does not exist, and ${why}: create it (${writable}) ` +
          "before the service starts, or restart the service once it is there " +
          "(sudo systemctl restart image-transfer)"
        : `Note: the folder ${folder} is not in --root ${root} (${path} does not exist), and ` +
          `${why}: on the system installed from ${root}, create ${folder} (${writable}) ` +
          "before the service starts",
    );
  }
  return notes;
}
