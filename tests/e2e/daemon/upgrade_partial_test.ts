/**
 * An upgrade from a version before each install had its own id (`sender_id`): the ledger of
 * schema 5 records a file cut short by a kill while rsync (or `local`) sent it, and its partial
 * copy lies in an upload folder (a temporary file) named as that version named them, by the host
 * name, watch folder and destination. The new daemon, started on the same state folder, says no id
 * was lost (there was none), continues that copy, and leaves no temporary name at the
 * destination. A real daemon (and a real sshd).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { startCli } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS, randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";
import { testJob } from "../../helpers/jobs.ts";
import { rawLedger } from "../../helpers/old_ledger.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { destinationIdentity } from "../../../src/ledger/destination_identity.ts";
import { LEDGER_SCHEMA } from "../../../src/ledger/ledger_file.ts";

const NAME = "img000.fits";
const SIZE = 1_005_120;
/** The file's mtime: the night folder 20231114 (UTC). */
const MTIME_MS = 1_700_000_000_000;
const NIGHT = "20231114";

/**
 * The upload folder owner id of the versions before `sender_id` (their `jobOwner`; up to eaf97180,
 * schema 3, by the `job` name too).
 */
function oldOwner(watch: string, remoteBase: string, job?: string): string {
  const parts = [Deno.hostname(), ...job === undefined ? [] : [job], watch, remoteBase];
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 10);
}

/** A ledger of schema 5 (or `schema`) in `db`, recording `name` of job `default` as being sent to `target`. */
function schema5Ledger(
  db: DatabaseSync,
  target: string,
  name: string,
  size: number,
  schema = 5,
): void {
  for (const step of LEDGER_SCHEMA.slice(0, schema)) {
    if (typeof step === "string") db.exec(step);
    else step(db);
  }
  db.exec(`PRAGMA user_version = ${schema}`);
  db.prepare(
    `INSERT INTO files (job, target, rel_path, size, mtime_ms, destination, state, attempts,
       next_attempt_at, last_error, created_at, updated_at, transferred_at)
     VALUES ('default', ?, ?, ?, ?, ?, 'transferring', 1, 0, NULL, 1, 2, NULL)`,
  ).run(target, name, size, MTIME_MS, `${NIGHT}/${name}`);
  db.close();
}

Deno.test("an upgrade from a version without sender_id: its cut-short local copy is continued, no id is said lost, no temporary name is left", async () => {
  const { root, stateDir, db } = await rawLedger("itx-upgrade-local-");
  const watch = join(root, "watch");
  const dest = join(root, "dest");
  const night = join(dest, NIGHT);
  await Deno.mkdir(watch);
  await Deno.mkdir(night, { recursive: true });
  const config = join(root, "config.yaml");
  await writeConfig(config, {
    watch_path: watch,
    transfer_method: "local",
    remote_base_path: dest,
    state_dir: stateDir,
    log_file: "",
    night_timezone: "UTC",
    night_date_source: "mtime",
    stability_window_seconds: 0.3,
    rescan_interval_seconds: 0,
  });
  try {
    const size = 5 * 1024 * 1024; // Above what the copier threads take: copied as resumed ones are.
    const bytes = randomBytes(size);
    const source = join(watch, NAME);
    await Deno.writeFile(source, bytes);
    await Deno.utime(source, MTIME_MS / 1000, MTIME_MS / 1000);
    const job = testJob("default", {
      watch_path: watch,
      transfer_method: "local",
      remote_base_path: dest,
    });
    schema5Ledger(db, destinationIdentity(job), NAME, size);
    const temp = `.${NAME}.${
      oldOwner(watch, dest)
    }-052bccb51576ab7f13473c5c.image-transfer-partial`;
    await Deno.writeFile(join(night, temp), bytes.subarray(0, 3_000_000), { mode: 0o600 });

    const daemon = startCli(["run", "-c", config], { env: { HOME: root } });
    try {
      await daemon.waitForOutput("Successfully transferred");
      assert.deepEqual(await Deno.readFile(join(night, NAME)), bytes);
      assert.deepEqual([...Deno.readDirSync(night)].map((e) => e.name), [NAME]);
      const log = daemon.stderr() + daemon.stdout();
      assert.match(log, /Resumed \S+img000\.fits at byte 3000000/);
      assert.doesNotMatch(log, /WARNING/);
    } finally {
      await daemon.stop();
    }
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

/** The versions without sender_id: schema 5 (a58cae47), and schema 3 that named by the job too. */
const OLD_VERSIONS = [
  { schema: 5, byName: false, scheme: "ssh:" },
  { schema: 3, byName: true, scheme: "rsync:" }, // Before scp and rsync were one destination.
];

for (const { schema, byName, scheme } of OLD_VERSIONS) {
  Deno.test(`an upgrade from a version without sender_id (schema ${schema}${byName ? ", named by the job too" : ""}): its cut-short rsync copy is continued, no id is said lost, no temporary name is left`, async () => {
    const sshd = await startSshd();
    const { root, stateDir, db } = await rawLedger("itx-upgrade-");
    const box = await sshSandbox(sshd, "rsync", {
      state_dir: stateDir,
      night_date_source: "mtime",
      stability_window_seconds: 0.3,
      rescan_interval_seconds: 0,
      bandwidth_limit: "60KiB/s", // As the trial's: each file in a call of its own.
    });
    try {
      // The source, and the ledger a version of schema 5 left when it was killed sending it.
      const bytes = randomBytes(SIZE);
      const source = join(box.watch, NAME);
      await Deno.writeFile(source, bytes);
      await Deno.utime(source, MTIME_MS / 1000, MTIME_MS / 1000);
      const job = sshd.job({
        watch_path: box.watch,
        transfer_method: "rsync",
        remote_base_path: box.remote,
      });
      schema5Ledger(db, destinationIdentity(job).replace(/^ssh:/, scheme), NAME, SIZE, schema);
      // Its upload folder, as that version's rsync left it: a private folder holding the first part.
      const night = join(box.remote, NIGHT);
      const upload = join(
        night,
        `.incoming-${
          oldOwner(box.watch, box.remote, byName ? "default" : undefined)
        }-052bccb51576ab7f13473c5c.image-transfer-partial`,
      );
      await Deno.mkdir(upload, { recursive: true });
      await Deno.writeFile(join(upload, NAME), bytes.subarray(0, 884_736), { mode: 0o600 });
      for (const path of [night, upload, join(upload, NAME)]) {
        await Deno.chown(path, sshd.uid, sshd.gid);
      }
      await Deno.chmod(upload, 0o700);

      const daemon = startCli(["run", "-c", box.config], { env: box.env });
      try {
        const copy = join(night, NAME);
        await waitFor(
          () => Deno.stat(copy).then((s) => s.size === SIZE, () => false),
          LEAST_CEILING_MS,
          `${NAME} at the destination`,
        );
        assert.deepEqual(await Deno.readFile(copy), bytes);
        const left = () => [...Deno.readDirSync(night)].map((entry) => entry.name);
        await waitFor(() => left().length === 1, LEAST_CEILING_MS, "the upload folders gone");
        assert.deepEqual(left(), [NAME], "no temporary name left");
        await daemon.waitForOutput("Successfully transferred");
        const log = daemon.stderr() + daemon.stdout();
        assert.match(log, /Resuming \S+img000\.fits at byte 884736 of 1005120/);
        assert.doesNotMatch(log, /was missing/);
        assert.doesNotMatch(log, /WARNING/);
      } finally {
        await daemon.stop();
      }
    } finally {
      await sshd.stop();
      await Deno.remove(box.root, { recursive: true }).catch(() => {});
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  });
}
