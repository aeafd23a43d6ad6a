/**
 * Fill the service templates of the top-level `service/` folder.
 *
 * The service templates, embedded in the program (and in every compiled
 * binary) as text imports from the top-level `service/` folder.
 *
 * @module
 */

/**
 * Fill `{{NAME}}` placeholders (also written `{{ NAME }}`, as `deno fmt` leaves
 * them in XML) and keep or drop flagged lines.
 *
 * A line that starts with `{{?flag}}` is kept (without the marker) only when
 * `flags[flag]` is true; one that starts with `{{#}}` is the template's own note (that it is a
 * template, and how it is filled in) and is left out. Values are inserted as given: escape them
 * for the target format first.
 *
 * @param template the template text
 * @param values the text for each placeholder name
 * @param flags which `{{?flag}}` lines to keep
 * @returns the filled text
 * @throws {Error} when a placeholder or flag has no value, so nothing half-filled is written
 */
export function fillTemplate(
  template: string,
  values: Record<string, string>,
  flags: Record<string, boolean> = {},
): string {
  const lines: string[] = [];
  for (const line of template.split("\n")) {
    if (line.startsWith("{{#}}")) continue;
    const flagged = /^\{\{\?([A-Za-z_]+)\}\}/.exec(line);
    if (flagged) {
      const flag = flagged[1];
      if (!(flag in flags)) {
        throw new Error(`Cannot fill the service template: no value for the line flag "${flag}"`);
      }
      if (flags[flag]) lines.push(line.slice(flagged[0].length));
      continue;
    }
    lines.push(line);
  }
  return lines.join("\n").replace(/\{\{\s*([A-Za-z_]*)\s*\}\}/g, (_whole, name: string) => {
    if (!Object.hasOwn(values, name)) {
      throw new Error(`Cannot fill the service template: no value for {{${name}}}`);
    }
    return values[name];
  });
}

import systemdUnit from "../../service/image-transfer.service" with { type: "text" };
import launchdPlist from "../../service/com.image-transfer.daemon.plist" with { type: "text" };
import scheduledTask from "../../service/image-transfer.xml" with { type: "text" };

/** The systemd unit template (`service/image-transfer.service`). */
export const SYSTEMD_UNIT_TEMPLATE: string = systemdUnit;

/** The launchd agent template (`service/com.image-transfer.daemon.plist`). */
export const LAUNCHD_PLIST_TEMPLATE: string = launchdPlist;

/** The Windows Task Scheduler template (`service/image-transfer.xml`). */
export const TASK_XML_TEMPLATE: string = scheduledTask;
