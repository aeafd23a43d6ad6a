/**
 * The ledger's schema version on real SQLite files: a ledger written before
 * versioning is migrated with its rows intact, one written by a newer
 * image-transfer is refused (unchanged) with a clear message, also through
 * the real CLI (`run --once`, `status`), without a stack trace.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Ledger, LEDGER_FILE } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { ledgerCounts } from "../../../src/status/ledger_reports.ts";
import { LEDGER_SCHEMA_VERSION } from "../../../src/ledger/ledger_file.ts";
import { runCli } from "../../helpers/cli.ts";
import { listFiles, writeConfig } from "../../helpers/files.ts";
import { rawLedger, userVersion } from "../../helpers/old_ledger.ts";

/** The ledger exactly as image-transfer 0.1.0 wrote it (no schema version). */
const UNVERSIONED_SCHEMA = `
CREATE TABLE IF NOT EXISTS files (
  job TEXT NOT NULL,
  rel_path TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ms INTEGER NOT NULL,
  destination TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'transferring', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  transferred_at INTEGER,
  PRIMARY KEY (job, rel_path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_state ON files (job, state);
CREATE INDEX IF NOT EXISTS files_by_update ON files (updated_at);
`;

function rowCount(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return Number((db.prepare("SELECT COUNT(*) AS n FROM files").get() as { n: number }).n);
  } finally {
    db.close();
  }
}

/** A state folder holding a ledger at schema `version` with one done and one pending file. */
async function ledgerAt(
  version: number,
): Promise<{ root: string; stateDir: string; path: string }> {
  const { root, stateDir, path, db } = await rawLedger("itx-ledger-schema-");
  db.exec(UNVERSIONED_SCHEMA);
  const insert = db.prepare(
    `INSERT INTO files (job, rel_path, size, mtime_ms, destination, state, created_at, updated_at,
       transferred_at) VALUES (?, ?, ?, ?, ?, ?, 1, 1, ?)`,
  );
  insert.run("default", "night 1/a.fits", 100, 1_700_000_000_000, "20231114/a.fits", "done", 2);
  insert.run("default", "b.fits", 200, 1_700_000_000_000, "20231114/b.fits", "pending", null);
  if (version !== 0) db.exec(`PRAGMA user_version = ${version}`);
  db.close();
  return { root, stateDir, path };
}

Deno.test("a new ledger is stamped with the current schema version", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-ledger-schema-" });
  try {
    Ledger.open(join(root, "state")).close();
    assert.equal(userVersion(join(root, "state", LEDGER_FILE)), LEDGER_SCHEMA_VERSION);
    assert.equal(LEDGER_SCHEMA_VERSION, 8);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a ledger from before schema versions is migrated and keeps its files", async () => {
  const { root, stateDir, path } = await ledgerAt(0);
  try {
    assert.equal(userVersion(path), 0);
    const readOnly = Ledger.open(stateDir, { readOnly: true });
    assert.ok(readOnly);
    // Read as it is: the files have no destination yet (target "").
    assert.deepEqual(ledgerCounts(readOnly).map((c) => [c.target, c.state, c.count]), [
      ["", "done", 1],
      ["", "pending", 1],
    ]);
    readOnly.close();
    assert.equal(userVersion(path), 0, "a read-only open changes nothing");

    const ledger = Ledger.open(stateDir);
    try {
      assert.equal(userVersion(path), LEDGER_SCHEMA_VERSION);
      // The job that starts next adopts the files: they are its destination's.
      const table = new FileRows(ledger, "default", "local:/data");
      assert.equal(table.adoptUnattributed(), 2);
      assert.deepEqual(table.doneVersions(["night 1/a.fits"])[0], {
        size: 100,
        mtimeMs: 1_700_000_000_000,
      });
      assert.deepEqual(table.unfinished().map((row) => row.relPath), ["b.fits"]);
      // The version a done row records is the one whose copy arrived; a pending row's is not known.
      const sent = (name: string) => [table.get(name)!.sentSize, table.get(name)!.sentMtimeMs];
      assert.deepEqual(sent("night 1/a.fits"), [100, 1_700_000_000_000]);
      assert.deepEqual(sent("b.fits"), [null, null]);
      table.markDone([table.get("b.fits")!]);
      // Another destination of the same job has received nothing.
      assert.equal(new FileRows(ledger, "default", "local:/elsewhere").get("b.fits"), undefined);
    } finally {
      ledger.close();
    }
    const again = Ledger.open(stateDir);
    assert.deepEqual(
      ledgerCounts(again).map((c) => [c.target, c.state, c.count]),
      [["local:/data", "done", 2]],
    );
    again.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a ledger from a newer image-transfer is refused and left unchanged", async () => {
  const { root, stateDir, path } = await ledgerAt(LEDGER_SCHEMA_VERSION + 1);
  try {
    const before = await Deno.readFile(path);
    const message = new RegExp(
      `Cannot open the ledger .*ledger\\.sqlite: it was written by a newer image-transfer ` +
        `\\(ledger schema version ${LEDGER_SCHEMA_VERSION + 1}; this version understands up to ` +
        `${LEDGER_SCHEMA_VERSION}\\)`,
    );
    assert.throws(() => Ledger.open(stateDir), message);
    assert.throws(() => Ledger.open(stateDir, { readOnly: true }), message);
    assert.deepEqual(await Deno.readFile(path), before);
    assert.equal(userVersion(path), LEDGER_SCHEMA_VERSION + 1);
    assert.equal(rowCount(path), 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("run --once and status refuse a newer ledger with a plain message, exit 1, send nothing", async () => {
  const { root, stateDir, path } = await ledgerAt(LEDGER_SCHEMA_VERSION + 5);
  try {
    const watch = join(root, "watch");
    const dest = join(root, "dest");
    await Deno.mkdir(watch);
    await Deno.mkdir(join(root, "home"));
    await Deno.writeFile(join(watch, "c.fits"), new Uint8Array(2880).fill(1));
    const config = join(root, "config.yaml");
    await writeConfig(config, {
      watch_path: watch,
      remote_base_path: dest,
      transfer_method: "local",
      stability_window_seconds: 0.2,
      state_dir: stateDir,
      log_file: "",
    });
    const env = { HOME: join(root, "home") };
    for (const args of [["run", "--once"], ["status"]]) {
      const out = await runCli([...args, "-c", config], { env });
      assert.equal(out.code, 1, `${args.join(" ")}: ${out.stderr}`);
      assert.match(out.stderr, /error: Cannot open the ledger .*newer image-transfer/);
      assert.match(out.stderr, /move the ledger aside/);
      assert.doesNotMatch(out.stderr, /^\s+at /m, "no stack trace");
    }
    assert.deepEqual(await listFiles(dest).catch(() => []), []);
    assert.equal(userVersion(path), LEDGER_SCHEMA_VERSION + 5);
    assert.equal(rowCount(path), 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("status reads a ledger from before schema versions as it is: its counts and recent transfers, nothing changed", async () => {
  const { root, stateDir, path } = await ledgerAt(0);
  try {
    await Deno.mkdir(join(root, "watch"));
    await Deno.mkdir(join(root, "home"));
    const config = join(root, "config.yaml");
    await writeConfig(config, {
      watch_path: join(root, "watch"),
      remote_base_path: join(root, "dest"),
      transfer_method: "local",
      state_dir: stateDir,
      log_file: "",
    });
    const out = await runCli(["status", "-c", config], { env: { HOME: join(root, "home") } });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /night 1\/a\.fits/, out.stdout);
    assert.doesNotMatch(out.stderr, /^\s+at /m, "no stack trace");
    assert.equal(userVersion(path), 0, "status changes nothing");
    assert.equal(rowCount(path), 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
