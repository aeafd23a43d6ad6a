/**
 * rsync dates a copy it finished as its source (`--times`). A copy that rsync finished but that
 * was not renamed into place before the daemon died (the call that renames it cut off), of a
 * source whose date is days old (a backlog after an outage, an image sent again), is not taken
 * for expired at the restart: the next attempt continues it (its file, the same inode, renamed
 * into place; only its last byte travels). A leftover in which nothing was written for longer
 * than `resume_partial_hours` is still swept and its file sent whole. Against a real OpenSSH
 * server and real rsync.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { jobOwners, uploadFolderName } from "../../../src/transfer/temp_name.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile } from "../../helpers/files.ts";
import { captureLogs, type LogCapture } from "../../helpers/log_capture.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { itemFor, openInstall, plantUploadFolder } from "../../helpers/transports.ts";
import type { Transport } from "../../../src/transfer/transport.ts";

const never = new AbortController().signal;
const NIGHT = "20240601";
const SIZE = 9 * 1024 * 1024 + 123; // over what goes in one call: sent by rsync itself
const TWO_DAYS_AGO = new Date(Date.now() - 48 * 3600_000);

/** Where each "Resuming" line of the records since `mark` said the copy was continued from. */
function resumedFrom(logs: LogCapture, mark: number): number[] {
  return logs.records.slice(mark)
    .filter((record) => String(record.rawMessage).startsWith("Resuming"))
    .map((record) => Number(record.properties.from));
}

/** Bytes rsync said it sent (its `--stats`) in the records since `mark`. */
function rsyncSent(logs: LogCapture, mark: number): number {
  return logs.records.slice(mark)
    .filter((record) => String(record.rawMessage).startsWith("rsync sent"))
    .reduce((sum, record) => sum + Number(record.properties.bytes), 0);
}

/** The copies (not the finishing step's hidden work files) in upload folders below `dst`. */
async function uploadCopies(dst: string): Promise<string[]> {
  return (await listFiles(dst)).filter((rel) =>
    rel.includes("/.incoming") && !rel.split("/").at(-1)!.startsWith(".")
  );
}

Deno.test("rsync: a finished copy of an old-dated source left by a cut-off finish is continued after a restart; a leftover idle past resume_partial_hours is swept", async (t) => {
  // The server's `mv`, while `cut` is there, kills the session instead of renaming a copy onto
  // its final name (a name outside the upload folders): the daemon dies with its finishing call.
  const tools = await Deno.makeTempDir({ prefix: "itx-mv-cut-" });
  await Deno.chmod(tools, 0o777); // the login user removes `cut`
  const cut = join(tools, "cut");
  await standInPrograms(tools, {
    mv: `for last do :; done\n` +
      `case "\${last%/*}" in */.incoming*) ;; *) if [ -e '${cut}' ]; then ` +
      `rm -f '${cut}'; kill -KILL 0; fi ;; esac\n` +
      `exec /usr/bin/mv "$@"\n`,
  });
  const sshd = await startSshd({ sessionEnv: { PATH: `${tools}:/usr/bin:/bin` } });
  const logs = await captureLogs();
  const root = await Deno.makeTempDir({ prefix: "itx-olddated-" });
  const dst = await sshd.makeRemoteDir();
  // The default resume_partial_hours (24).
  const job = sshd.job({ transfer_method: "rsync", remote_base_path: dst });
  try {
    const src = join(root, "src");
    await Deno.mkdir(join(src, NIGHT), { recursive: true });
    const makeSource = async (name: string) => {
      const source = join(src, NIGHT, name);
      await Deno.writeFile(source, randomBytes(SIZE));
      // Taken two days ago: sent late, after an outage.
      await Deno.utime(source, TWO_DAYS_AGO, TWO_DAYS_AGO);
      return await itemFor(source, `${NIGHT}/${name}`);
    };

    /** Restart the install once (open, `during` its run, close). */
    const restart = async (during: (transport: Transport) => Promise<unknown>) => {
      const install = await openInstall(job, root, "pc");
      try {
        await during(install.transport);
      } finally {
        await install.transport.close();
        install.ledger.close();
      }
    };

    for (const sweep of ["its first batch there", "dropping a gone file's copy there"]) {
      await t.step(`a finished copy dated as its old source is continued (${sweep})`, async () => {
        const item = await makeSource("late.fits");
        await Deno.writeTextFile(cut, "");
        await restart(async (transport) => {
          const [cutOff] = await transport.send([item], never);
          assert.notEqual(cutOff.error, null, "the finishing call was cut off");
        });
        // rsync finished the copy and dated it as the source; it waits in the upload folder.
        const [copy] = await uploadCopies(dst);
        assert.ok(copy !== undefined, `a kept copy: ${await listFiles(dst)}`);
        const left = await Deno.stat(join(dst, copy));
        assert.equal(left.size, item.size);
        assert.equal(Math.floor(left.mtime!.getTime() / 1000), Math.floor(item.mtimeMs / 1000));
        assert.equal(await sha256OfFile(join(dst, copy)), await sha256OfFile(item.source));

        if (sweep.startsWith("dropping")) {
          // Restarted, the install finds another file of the night gone and drops its kept copy:
          // the first call into that folder since the start sweeps it (a stop makes it at once).
          await restart((transport) => {
            transport.dropKeptCopies!([`${NIGHT}/gone.fits`]);
            return Promise.resolve();
          });
          assert.deepEqual(await uploadCopies(dst), [copy], "the copy is kept");
        }

        await restart(async (transport) => {
          const mark = logs.records.length;
          const [sent] = await transport.send([item], never);
          assert.equal(sent.error, null, sent.error?.message);
          // Continued from its last byte (sent again, so the whole copy is checked), not sent
          // whole: the copy kept is the file now under its final name.
          assert.deepEqual(resumedFrom(logs, mark), [item.size - 1]);
          const bytes = rsyncSent(logs, mark);
          assert.ok(bytes < item.size / 2, `rsync sent ${bytes} bytes of ${item.size}`);
        });
        const final = join(dst, ...item.destination.split("/"));
        assert.equal((await Deno.stat(final)).ino, left.ino, "the kept copy itself was renamed");
        assert.equal(await sha256OfFile(final), await sha256OfFile(item.source), "byte-exact");
        assert.deepEqual(await uploadCopies(dst), []);
        await Deno.remove(final);
      });
    }

    await t.step(
      "a leftover nothing wrote in for longer is swept, its file sent whole",
      async () => {
        const item = await makeSource("stale.fits");
        const install = await openInstall(job, root, "pc");
        try {
          // What a killed run left three days ago, cut halfway: the copy and its upload folder
          // untouched since.
          const threeDaysAgo = new Date(Date.now() - 72 * 3600_000);
          const owner = jobOwners(job, install.ledger).owner;
          const night = join(dst, NIGHT);
          const name = uploadFolderName(owner);
          const folder = await plantUploadFolder(night, name, null, sshd, 0o700, "stale.fits");
          const copy = join(folder, "stale.fits");
          await Deno.writeFile(copy, (await Deno.readFile(item.source)).subarray(0, SIZE >> 1));
          for (const path of [copy, folder]) await Deno.utime(path, threeDaysAgo, threeDaysAgo);

          const mark = logs.records.length;
          const [sent] = await install.transport.send([item], never);
          assert.equal(sent.error, null, sent.error?.message);
          assert.deepEqual(resumedFrom(logs, mark), [], "not continued");
          const final = join(dst, ...item.destination.split("/"));
          const bytes = rsyncSent(logs, mark);
          assert.ok(bytes >= item.size, `sent whole: rsync sent ${bytes} bytes of ${item.size}`);
          assert.equal(await sha256OfFile(final), await sha256OfFile(item.source), "byte-exact");
          assert.deepEqual(
            (await listFolders(dst)).filter((rel) => rel.includes(".incoming")),
            [],
            "its upload folder swept",
          );
        } finally {
          await install.transport.close();
          install.ledger.close();
        }
      },
    );
  } finally {
    await logs.stop();
    await sshd.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
    await Deno.remove(dst, { recursive: true }).catch(() => {});
    await Deno.remove(tools, { recursive: true }).catch(() => {});
  }
});
