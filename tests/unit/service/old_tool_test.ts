/**
 * Which of the old tool's services an install may remove, and what it tells a user who must
 * remove the others: a system-wide one needs root, another account's is that account's.
 */
import assert from "node:assert/strict";
import {
  canRemove,
  leftOldServicesProblem,
  type OldService,
} from "../../../src/service/old_tool.ts";
import type { ServiceTarget } from "../../../src/service/plan.ts";

function target(os: "linux" | "darwin", scope: "system" | "user"): ServiceTarget {
  return { os, scope, user: "observer", uid: 1000, gid: 1000, home: "/home/observer" };
}

const SYSTEM_UNIT: OldService = {
  path: "/etc/systemd/system/image-transfer.service",
  scope: "system",
  uid: 0,
};

Deno.test("an install --user without root may not remove the old tool's system-wide service; with root, or a system install, may", () => {
  for (const os of ["linux", "darwin"] as const) {
    assert.equal(canRemove(SYSTEM_UNIT, target(os, "user"), false), false, os);
    assert.equal(canRemove(SYSTEM_UNIT, target(os, "user"), true), true, os);
    assert.equal(canRemove(SYSTEM_UNIT, target(os, "system"), false), true, `${os} --print`);
  }
});

Deno.test("the old tool's per-user service is removed for its own account, never for another", () => {
  const own: OldService = { path: "/home/observer/x", scope: "user", uid: 1000 };
  const theirs: OldService = { ...own, path: "/home/astro/x", otherAccount: "astro", uid: 1001 };
  for (const scope of ["system", "user"] as const) {
    assert.equal(canRemove(own, target("linux", scope), false), true, scope);
    assert.equal(canRemove(theirs, target("linux", scope), true), false, scope);
  }
});

Deno.test("the refusal names each old service left and the commands that stop and remove it", () => {
  const linux = leftOldServicesProblem([SYSTEM_UNIT], "linux");
  assert.match(linux, /would watch the same folders and send the same files twice/);
  assert.ok(
    linux.endsWith(
      "\n  /etc/systemd/system/image-transfer.service (a system-wide one, which only root may " +
        "remove): `sudo systemctl disable --now image-transfer.service`, then " +
        "`sudo rm /etc/systemd/system/image-transfer.service`, then " +
        "`sudo systemctl daemon-reload`",
    ),
    linux,
  );
  const daemon = "/Library/LaunchDaemons/com.observatory.imagetransfer.plist";
  const mac = leftOldServicesProblem([{ path: daemon, scope: "system", uid: 0 }], "darwin");
  assert.ok(
    mac.endsWith(
      `(a system-wide one, which only root may remove): \`sudo launchctl bootout ` +
        `system/com.observatory.imagetransfer\`, then \`sudo rm ${daemon}\``,
    ),
    mac,
  );
  // A path with a space is one shell word.
  const spaced = leftOldServicesProblem(
    [{ path: "/home/a b/u.service", scope: "user", otherAccount: "a b", uid: 7 }],
    "linux",
  );
  assert.ok(spaced.includes("`sudo rm '/home/a b/u.service'`"), spaced);
});
