/**
 * The release smoke test (`scripts/smoke.ts`) run here against `deno run`
 * with exactly the product's permission set, as CI runs it on Linux, macOS
 * and Windows and the release workflow on every target's own OS: it moves
 * real FITS files with the local method into night folders and checks the
 * bytes. Its real-service step is run too, against a `systemctl` that
 * answers as on a machine where systemd is not process 1: it must stop at
 * install-service's check with a plain message and leave nothing behind.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cliArgv, REPO_ROOT } from "../../helpers/cli.ts";
import { noSystemdPath } from "../../helpers/no_systemd.ts";

/** Keep deno's cache where it is when a test moves HOME. */
const DENO_DIR = Deno.env.get("DENO_DIR") ??
  join(Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/root", ".cache"), "deno");

const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys=uid",
];

async function smoke(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...PERMISSIONS,
      join(REPO_ROOT, "scripts", "smoke.ts"),
      ...args,
      "--",
      Deno.execPath(),
      ...cliArgv([]),
    ],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("smoke script passes against deno run with the product's permission set", async () => {
  const out = await smoke([]);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  for (
    const line of [
      /^ok: --version \(image-transfer \d+\.\d+\.\d+, commit: [0-9a-f]{40} \(source checkout\), target: /m,
      /^ok: init writes a config that validates once its example values are set$/m,
      /^ok: run --once sent 3 FITS files into 20240315\/ with identical bytes; the hook ran for each, through the program launcher$/m,
      /^ok: a local folder is watched by its events \(watching: file events \(\w+\)\)$/m,
      // Under sudo (as CI runs the tests), --user is refused, which the smoke test checks.
      /^ok: install-service --print \(system and --user( refused under sudo)?\) shows image-transfer\.service$/m,
      /^smoke test passed$/m,
    ]
  ) {
    assert.match(out.stdout, line);
  }
});

Deno.test("smoke script fails when --version names another commit (the check is real)", async () => {
  const out = await smoke(["--expect-commit", "0".repeat(40)]);
  assert.equal(out.code, 1);
  assert.match(
    out.stderr,
    /smoke test FAILED: --version names commit [0-9a-f]{40}, expected 0{40}/,
  );
});

Deno.test("smoke --service where systemd is not process 1: install-service refuses, nothing is left", async () => {
  const home = await Deno.makeTempDir({ prefix: "itx-smoke-home-" });
  const tools = await Deno.makeTempDir({ prefix: "itx-smoke-tools-" });
  try {
    const PATH = await noSystemdPath(tools);
    const out = await smoke(["--service"], { HOME: home, DENO_DIR, PATH });
    assert.equal(out.code, 1, out.stdout + out.stderr);
    assert.match(out.stdout, /^ok: run --once sent 3 FITS files/m);
    assert.match(
      out.stderr,
      /smoke test FAILED: install-service: exit code 1, expected 0[\s\S]*Cannot install the service: systemctl cannot reach systemd/,
    );
    assert.deepEqual([...Deno.readDirSync(home)], [], "the service work folder is removed");
    assert.equal(
      await Deno.stat("/etc/systemd/system/image-transfer.service").then(() => true, () => false),
      false,
    );
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(tools, { recursive: true });
  }
});
