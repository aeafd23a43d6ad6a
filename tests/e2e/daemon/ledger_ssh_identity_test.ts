/**
 * scp and rsync send to one destination: a job switched from one to the other (or given its
 * default port, written out) keeps its history. On real SQLite files: the destination identities,
 * a ledger of schema version 3 written with the identities of that version (`scp://`, `rsync://`,
 * the port when set) migrated once to version 4, its rows of the same file under both methods
 * merged (done over not done, else the newer), its job-name records merged, the same read as it is
 * (`status` before the daemon migrates it), and a migration killed halfway leaving the version 3
 * ledger, which the next start migrates.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { destinationIdentity } from "../../../src/ledger/destination_identity.ts";
import { identityFromVersion3 } from "../../../src/ledger/destination_identity.ts";
import { carryOverRenamedJobs } from "../../../src/ledger/job_names.ts";
import { ledgerCounts } from "../../../src/status/ledger_reports.ts";
import { LEDGER_SCHEMA, LEDGER_SCHEMA_VERSION } from "../../../src/ledger/ledger_file.ts";
import { testJob } from "../../helpers/jobs.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { exists, waitFor } from "../../helpers/files.ts";
import { rawLedger, userVersion } from "../../helpers/old_ledger.ts";

/** A job of `method` to obs@freya:/data, with `keys` added. */
function job(method: string, keys: Record<string, unknown> = {}) {
  return testJob("default", {
    watch_path: "/watch",
    transfer_method: method,
    remote_host: "freya",
    remote_user: "obs",
    remote_base_path: "/data",
    ...(method === "ftp" ? { ftp_password_env: "FTP_PASSWORD" } : {}),
    ...keys,
  });
}

Deno.test("destination identity: scp and rsync, and an empty or default port, are one destination; ftp and local are not", () => {
  const ssh = destinationIdentity(job("scp"));
  assert.equal(ssh, "ssh://obs@freya/data");
  assert.equal(destinationIdentity(job("rsync")), ssh);
  assert.equal(destinationIdentity(job("scp", { ssh_port: 22 })), ssh);
  assert.equal(destinationIdentity(job("rsync", { ssh_port: 22 })), ssh);
  assert.equal(destinationIdentity(job("rsync", { ssh_port: 2222 })), "ssh://obs@freya:2222/data");
  const ftp = destinationIdentity(job("ftp"));
  assert.equal(ftp, "ftp://obs@freya/data");
  assert.equal(destinationIdentity(job("ftp", { ftp_port: 21 })), ftp);
  assert.notEqual(destinationIdentity(job("ftp", { ftp_port: 22 })), ssh);
  assert.notEqual(destinationIdentity(job("ftp", { ftp_port: 2121 })), ftp);
  assert.equal(destinationIdentity(job("local")), "local:/data");
  // What version 3 wrote for each becomes the identity now.
  const written = [
    ["scp://obs@freya:22/data", ssh],
    ["rsync://obs@freya/data", ssh],
    ["scp://freya:22/data", "ssh://freya/data"],
    ["rsync://obs@freya:2222/data", "ssh://obs@freya:2222/data"],
    ["scp://obs@freya:22/data:22/x", "ssh://obs@freya/data:22/x"],
    ["scp://obs@::22/data", "ssh://obs@::22/data"],
    ["ftp://obs@freya:21/data", ftp],
    ["ftp://obs@freya:2121/data", "ftp://obs@freya:2121/data"],
    ["local:/data", "local:/data"],
    ["", ""],
  ];
  for (const [old, now] of written) assert.equal(identityFromVersion3(old), now, old);
});

/** SQL of a row: job, target, path, size, state, updated_at. */
type Row = [string, string, string, number, string, number];

/** A version 3 ledger in a new state folder, built with that version's steps, holding `rows`. */
async function version3Ledger(rows: Row[], names: Record<string, string[]> = {}) {
  const { root, stateDir, path, db } = await rawLedger("itx-ledger-ssh-");
  for (const step of LEDGER_SCHEMA.slice(0, 3)) db.exec(step as string);
  db.exec("PRAGMA user_version = 3");
  const insert = db.prepare(
    `INSERT INTO files (job, target, rel_path, size, mtime_ms, destination, state, attempts,
       next_attempt_at, last_error, created_at, updated_at, transferred_at)
     VALUES (?, ?, ?, ?, 1700000000000, ?, ?, 0, 0, NULL, 1, ?, ?)`,
  );
  for (const [jobName, target, rel, size, state, at] of rows) {
    insert.run(
      jobName,
      target,
      rel,
      size,
      `20231114/${rel}`,
      state,
      at,
      state === "done" ? at : null,
    );
  }
  const meta = db.prepare("INSERT INTO ledger_meta (key, value) VALUES (?, ?)");
  for (const [key, value] of Object.entries(names)) meta.run(key, JSON.stringify(value));
  db.close();
  return { root, stateDir, path };
}

/** Every row of the ledger at `path` as [job, target, path, size, state]. */
function rowsOf(path: string): Array<[string, string, string, number, string]> {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return (db.prepare("SELECT * FROM files ORDER BY job, target, rel_path").all() as Array<
      Record<string, string | number>
    >).map((r) =>
      [r.job, r.target, r.rel_path, Number(r.size), r.state] as [
        string,
        string,
        string,
        number,
        string,
      ]
    );
  } finally {
    db.close();
  }
}

const SCP = "scp://obs@freya:22/data";
const RSYNC = "rsync://obs@freya/data";
const SSH = "ssh://obs@freya/data";
/** A user who sent by scp, then switched to rsync before this version (and sent some again). */
const SWITCHED: Row[] = [
  ["default", SCP, "a.fits", 1, "done", 10],
  ["default", RSYNC, "a.fits", 1, "pending", 30], // done wins
  ["default", SCP, "b.fits", 2, "pending", 20],
  ["default", RSYNC, "b.fits", 2, "done", 15], // done wins, though older
  ["default", SCP, "c.fits", 3, "done", 5],
  ["default", RSYNC, "c.fits", 33, "done", 50], // the newer done wins
  ["default", SCP, "d.fits", 4, "failed", 40], // the newer failed wins over pending
  ["default", RSYNC, "d.fits", 4, "pending", 35],
  ["default", RSYNC, "e.fits", 5, "done", 60],
  ["default", "ftp://obs@freya:21/data", "f.fits", 6, "done", 1],
  ["default", "local:/data", "g.fits", 7, "done", 1],
  ["other", "scp://obs@freya:2222/data", "h.fits", 8, "done", 1],
  ["other", "", "i.fits", 9, "done", 1],
];
const MERGED = [
  ["default", "ftp://obs@freya/data", "f.fits", 6, "done"],
  ["default", "local:/data", "g.fits", 7, "done"],
  ["default", SSH, "a.fits", 1, "done"],
  ["default", SSH, "b.fits", 2, "done"],
  ["default", SSH, "c.fits", 33, "done"],
  ["default", SSH, "d.fits", 4, "failed"],
  ["default", SSH, "e.fits", 5, "done"],
  ["other", "", "i.fits", 9, "done"],
  ["other", "ssh://obs@freya:2222/data", "h.fits", 8, "done"],
];
const MERGED_COUNTS = [
  ["default", "ftp://obs@freya/data", "done", 1],
  ["default", "local:/data", "done", 1],
  ["default", SSH, "done", 4],
  ["default", SSH, "failed", 1],
  ["other", "", "done", 1],
  ["other", "ssh://obs@freya:2222/data", "done", 1],
];

Deno.test("a version 3 ledger of a job switched from scp to rsync migrates once: one row a file, done over pending, the newer among equals; read as it is before, the same", async () => {
  const { root, stateDir, path } = await version3Ledger(SWITCHED, {
    [`job_names\n${SCP}\n/watch`]: ["camera"],
    [`job_names\n${RSYNC}\n/watch`]: ["camera", "default"],
  });
  try {
    // status before the daemon migrates it: the merged history, nothing written.
    const before = await Deno.readFile(path);
    const reader = Ledger.open(stateDir, { readOnly: true })!;
    try {
      assert.deepEqual(ledgerCounts(reader).map((c) => Object.values(c)), MERGED_COUNTS);
      assert.deepEqual(
        new FileRows(reader, "default", destinationIdentity(job("rsync"))).doneVersions(
          ["a.fits", "b.fits", "c.fits", "d.fits"],
        ).map((done) => done?.size),
        [1, 2, 33, undefined],
      );
      assert.deepEqual(
        FileRows.of(reader, job("scp", { ssh_port: 22 })).inState("failed").map((r) => r.relPath),
        ["d.fits"],
      );
    } finally {
      reader.close();
    }
    assert.equal(userVersion(path), 3);
    assert.deepEqual(await Deno.readFile(path), before, "reading changes nothing");

    const logs = await captureLogs();
    const ledger = Ledger.open(stateDir);
    try {
      assert.equal(userVersion(path), LEDGER_SCHEMA_VERSION);
      assert.equal(logs.count("info", "Upgrading the ledger"), 1, "the upgrade is said");
      assert.deepEqual(rowsOf(path), MERGED);
      assert.deepEqual(ledgerCounts(ledger).map((c) => Object.values(c)), MERGED_COUNTS);
      for (const method of ["scp", "rsync"]) {
        const table = FileRows.of(ledger, job(method));
        assert.deepEqual(
          table.doneVersions(["a.fits", "b.fits", "c.fits", "e.fits"]).map((done) => done?.size),
          [1, 2, 33, 5],
          method,
        );
        // f.fits and g.fits went by ftp and local copy, not to this destination.
        assert.equal(table.doneElsewhereOnly(), 2);
      }
      assert.deepEqual(JSON.parse(ledger.meta(`job_names\n${SSH}\n/watch`)!), [
        "camera",
        "default",
      ]);
      assert.equal(ledger.meta(`job_names\n${SCP}\n/watch`), null);
      assert.deepEqual(carryOverRenamedJobs(ledger, [job("rsync")]), [], "nothing renamed");
    } finally {
      ledger.close();
    }
    // Once: the next start finds version 4 and changes nothing.
    const again = Ledger.open(stateDir);
    again.close();
    await logs.stop();
    assert.deepEqual(rowsOf(path), MERGED);
    assert.equal(logs.count("info", "Upgrading the ledger"), 1, "said once, not at the next start");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a migration killed halfway leaves the version 3 ledger as it was; the next start migrates it", async () => {
  const { root, stateDir, path } = await version3Ledger(SWITCHED);
  const marker = join(root, "merged");
  try {
    const ledgerFile = new URL("../../../src/ledger/ledger_file.ts", import.meta.url).href;
    const identity = new URL("../../../src/ledger/destination_identity.ts", import.meta.url).href;
    // The step merges, then the process is killed before the transaction commits.
    const code = `
      import { DatabaseSync } from "node:sqlite";
      import { LEDGER_SCHEMA, migrateLedger } from ${JSON.stringify(ledgerFile)};
      import { mergeSshIdentities } from ${JSON.stringify(identity)};
      const db = new DatabaseSync(${JSON.stringify(path)});
      migrateLedger(db, ${JSON.stringify(path)}, [...LEDGER_SCHEMA.slice(0, 3), (db) => {
        mergeSshIdentities(db);
        Deno.writeTextFileSync(${JSON.stringify(marker)}, "");
        for (;;) { /* killed here */ }
      }, ...LEDGER_SCHEMA.slice(4)]);`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", code],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      let ended = false;
      child.status.then(() => ended = true);
      await waitFor(async () => ended || await exists(marker), 60_000, "the step to merge");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* ended: said below */ }
    }
    const status = await child.output();
    assert.equal(status.signal, "SIGKILL", new TextDecoder().decode(status.stderr));
    assert.equal(userVersion(path), 3);
    const old = rowsOf(path);
    assert.equal(old.length, SWITCHED.length, "every row of version 3 is there");
    assert.ok(old.some(([, target]) => target === SCP) && old.some(([, t]) => t === RSYNC));

    const ledger = Ledger.open(stateDir);
    ledger.close();
    assert.equal(userVersion(path), LEDGER_SCHEMA_VERSION);
    assert.deepEqual(rowsOf(path), MERGED);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
