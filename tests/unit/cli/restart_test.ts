/** `restart` of a daemon a service manager started asks that manager, by the service's name. */
import assert from "node:assert/strict";
import { serviceRestartArgv } from "../../../src/cli/stop.ts";

Deno.test("serviceRestartArgv: systemd and launchd, system and user; none by hand", () => {
  assert.deepEqual(serviceRestartArgv("systemd-system", 1000), [
    "systemctl",
    "restart",
    "image-transfer.service",
  ]);
  assert.deepEqual(serviceRestartArgv("systemd-user", 1000), [
    "systemctl",
    "--user",
    "restart",
    "image-transfer.service",
  ]);
  assert.deepEqual(serviceRestartArgv("launchd-system", 501), [
    "launchctl",
    "kickstart",
    "-k",
    "system/com.image-transfer.daemon",
  ]);
  assert.deepEqual(serviceRestartArgv("launchd-user", 501), [
    "launchctl",
    "kickstart",
    "-k",
    "gui/501/com.image-transfer.daemon",
  ]);
  assert.equal(serviceRestartArgv(undefined, 501), null);
  assert.equal(serviceRestartArgv("something-else", 501), null);
});
