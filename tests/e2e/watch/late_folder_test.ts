/**
 * A watch folder whose look does not answer within 10 s is said for the kind of file system it is
 * on: a share whose server stopped answering (ERROR), or a local disk this machine or the disk was
 * too busy to answer for (WARNING: one late answer on a local disk is a busy moment, as a flood of
 * files on a loaded machine makes). Its answer is said too, with how long it took. A FUSE view
 * (`bindfs`) whose process is stopped (`SIGSTOP`) stands for the look that does not answer; the
 * kind the daemon knows of the folder is given as its watch decided it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isMounted, mountBindfsProcess, unmountBindfs } from "../../helpers/bindfs.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { waitForFolder } from "../../../src/watch/folder_wait.ts";
import { decideWatch, knownKindOf } from "../../../src/watch/fs_type.ts";

/** Wait for the folder of a stopped view, as `fileSystem` (known as the watch decided it). */
async function lateLook(fileSystem: { type: string; remote: boolean }) {
  const root = await Deno.makeTempDir({ prefix: "itx-late-folder-" });
  const [server, share] = [join(root, "server"), join(root, "share")];
  await Deno.mkdir(join(server, "watch"), { recursive: true });
  const view = await mountBindfsProcess(server, share);
  const logs = await captureLogs();
  const reasons: Array<string | null> = [];
  try {
    const how = decideWatch({ ...fileSystem, source: null, magic: null }, "events", 2);
    view.kill("SIGSTOP");
    const waiting = waitForFolder(join(share, "watch"), {
      job: "late",
      once: false,
      missingFolderRetryMs: 1000,
      signal: new AbortController().signal,
      onSilent: (reason) => reasons.push(reason),
      how: () => how,
    });
    // Said once the look has not answered for 10 s; then the view answers again.
    while (reasons.length === 0) await new Promise((done) => setTimeout(done, 200));
    view.kill("SIGCONT");
    assert.equal(await waiting, true, "the folder is there once it answers");
    const said = logs.records.filter((r) => r.category.includes("watch")).map((r) => ({
      level: r.level,
      text: r.message.map((part, i) => i % 2 === 0 ? part : String(part)).join(""),
    }));
    return { said, reasons };
  } finally {
    await logs.stop();
    view.kill("SIGCONT");
    if (await isMounted(share)) await unmountBindfs(share);
    await view.status;
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("a watch folder on a local disk that answers late: a WARNING that the machine or the disk was too busy, not a share's ERROR; its answer said with how long it took", async () => {
  const { said, reasons } = await lateLook({ type: "ext4", remote: false });
  // Before: ERROR "Cannot read watch folder ...: no answer within 10 s (a share whose server
  // stopped answering?)" on a local ext4 disk, during a flood of files on a loaded machine.
  assert.deepEqual(said.filter((line) => line.level === "error"), []);
  const late = said.filter((line) => line.level === "warning");
  assert.equal(late.length, 1, JSON.stringify(said));
  assert.match(
    late[0].text,
    /^Watch folder \S+\/watch did not answer within 10 s; it is on a local disk \(ext4\), so this machine or the disk is too busy to answer \(many files at once\?\); the job waits for it$/,
  );
  assert.doesNotMatch(late[0].text, /a share|server|stopped answering/);
  assert.match(
    reasons[0]!,
    /^no answer within 10 s \(this machine or its local disk \(ext4\) too busy to answer\?\)$/,
  );
  assert.equal(reasons.at(-1), null, "the job's state no longer says so once it answered");
  const back = said.filter((line) => line.level === "info");
  assert.equal(back.length, 1, JSON.stringify(said));
  assert.match(
    back[0].text,
    /^Watch folder \S+\/watch can be read again: it answered after \d+(\.\d)? s$/,
  );
});

Deno.test("a watch folder on a share that does not answer: an ERROR that names the share's server, as before", async () => {
  const { said, reasons } = await lateLook({ type: "nfs4", remote: true });
  const errors = said.filter((line) => line.level === "error");
  assert.equal(errors.length, 1, JSON.stringify(said));
  assert.match(
    errors[0].text,
    /^Cannot read watch folder \S+\/watch: no answer within 10 s \(a share whose server stopped answering\?\); the job waits for it$/,
  );
  assert.equal(reasons[0], "no answer within 10 s (a share whose server stopped answering?)");
  assert.ok(said.some((line) => /can be read again: it answered after/.test(line.text)));
});

Deno.test("knownKindOf: a remembered kind is said; nothing known without the mounts or a memory", () => {
  // The network mounts are not read in this test's process: only what was remembered is known.
  assert.equal(knownKindOf("/data/cam"), null);
  assert.deepEqual(knownKindOf("/data/cam", { type: "ext4", remote: false }), {
    type: "ext4",
    remote: false,
  });
});
