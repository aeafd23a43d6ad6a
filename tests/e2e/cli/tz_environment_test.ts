/**
 * A POSIX rule in `TZ` (`<-03>3`), which `date` follows and this program's clock does not (it runs
 * on UTC then): `run`, `doctor` and `config validate` say so once, naming TZ, the zone used and
 * night_timezone; an IANA name or a form the clock reads (`UTC+3`) says nothing, nor does a job
 * with its own night_timezone.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

const SAID = "in the environment is a rule this program's clock does not read";

for (const tz of ["<-03>3", "CLT4CLST,M9.1.6/24,M4.1.6/24"]) {
  Deno.test(`TZ=${tz} (a POSIX rule the clock does not read): run, doctor and config validate say that the night folders follow UTC, and to set night_timezone`, async () => {
    await using box = await cliSandbox({ night_timezone: "" });
    await Deno.writeFile(join(box.watch, "a.fits"), new Uint8Array(2880).fill(1));
    const env = { ...box.env, TZ: tz };
    const said = new RegExp(
      `TZ=${tz.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} ${SAID}: it keeps UTC \\(\\+00:00 now\\), ` +
        `not TZ's -0[34]:00.* as date does, so the night folders of job\\(s\\) default \\(no ` +
        `night_timezone\\) follow UTC; set night_timezone to an IANA name`,
    );
    const validate = await runCli(["config", "validate", "-c", box.config], { env });
    assert.equal(validate.code, 0, validate.stderr);
    assert.match(validate.stderr, said);
    const doctor = await runCli(["doctor", "-c", box.config], { env });
    assert.match(doctor.stdout, new RegExp(`WARN  ${said.source}`));
    const run = await runCli(["run", "--once", "-c", box.config], { env });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr.split(SAID).length - 1, 1, `said once: ${run.stderr}`);
    assert.match(run.stderr, said);
  });
}

Deno.test("TZ the clock reads (an IANA name, UTC+3), or a job with its own night_timezone: nothing said of TZ", async () => {
  await using box = await cliSandbox({ night_timezone: "" });
  for (const tz of ["America/Santiago", "UTC+3", ""]) {
    const out = await runCli(["config", "validate", "-c", box.config], {
      env: { ...box.env, TZ: tz },
    });
    assert.equal(out.code, 0, out.stderr);
    assert.doesNotMatch(out.stderr, new RegExp(SAID), tz);
  }
  await box.rewrite({ night_timezone: "America/Santiago" });
  const own = await runCli(["config", "validate", "-c", box.config], {
    env: { ...box.env, TZ: "<-03>3" },
  });
  assert.equal(own.code, 0, own.stderr);
  assert.doesNotMatch(own.stderr, new RegExp(SAID));
});
