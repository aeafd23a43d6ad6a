/**
 * `status` and `run --dry-run` list skipped entries with why; what they print
 * reaches a terminal, so names and link targets from the watch folder are
 * escaped as the log escapes them: an escape sequence in a folder's name or a
 * link's target must not act on the terminal, and a right-to-left override
 * must not show a name reversed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

// deno-lint-ignore no-control-regex
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

Deno.test("status and run --dry-run escape skipped folder names and link targets", async () => {
  await using box = await cliSandbox();
  const folder = join(box.watch, "dir\u001b[2J");
  await Deno.mkdir(folder);
  await Deno.writeTextFile(join(folder, "note.txt"), "not a FITS file");
  await Deno.writeTextFile(join(box.watch, "photo\u202egnp.txt"), "not a FITS file");
  await Deno.symlink("/nowhere\u001b]0;owned\u0007\u202egnp", join(box.watch, "link.fits"));

  const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(dry.code, 0, dry.stderr);
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  assert.equal(status.code, 0, status.stderr);
  for (const out of [dry.stdout, status.stdout]) {
    assert.doesNotMatch(out, RAW, JSON.stringify(out));
    assert.ok(out.includes(`${box.watch}/dir\\u001b[2J/note.txt: matches none`), out);
    assert.ok(out.includes(`${box.watch}/photo\\u202egnp.txt: matches none`), out);
    assert.ok(
      out.includes(
        `${box.watch}/link.fits: symbolic link to /nowhere\\u001b]0;owned\\u0007\\u202egnp: `,
      ),
      out,
    );
  }
});
