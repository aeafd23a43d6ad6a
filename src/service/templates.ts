/**
 * The service templates, embedded in the program (and in every compiled
 * binary) as text imports from the top-level `service/` folder.
 *
 * @module
 */
import systemdUnit from "../../service/image-transfer.service" with { type: "text" };
import launchdPlist from "../../service/com.image-transfer.daemon.plist" with { type: "text" };
import scheduledTask from "../../service/image-transfer.xml" with { type: "text" };

/** The systemd unit template (`service/image-transfer.service`). */
export const SYSTEMD_UNIT_TEMPLATE: string = systemdUnit;

/** The launchd agent template (`service/com.image-transfer.daemon.plist`). */
export const LAUNCHD_PLIST_TEMPLATE: string = launchdPlist;

/** The Windows Task Scheduler template (`service/image-transfer.xml`). */
export const TASK_XML_TEMPLATE: string = scheduledTask;
