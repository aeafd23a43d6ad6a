/**
 * This install's id (in the names of its temporary copies and upload folders) survives a damaged
 * ledger set aside and a lost one, is taken over from a ledger that kept it, falls back to the
 * host name's naming where state_dir cannot be written (said once), is made anew (said once) where
 * its file holds no id or was removed since a run that recorded files, and is written back where its
 * file was removed while the daemon runs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { keepSenderId, SENDER_ID_FILE, senderId } from "../../../src/ledger/state_files.ts";
import { hostJobOwner, jobOwners } from "../../../src/transfer/temp_name.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { testJob } from "../../helpers/jobs.ts";
import { damageLedger } from "../../helpers/transports.ts";

function idOf(dir: string): string | null {
  const ledger = Ledger.open(dir);
  try {
    return senderId(dir, { writable: true, ledger });
  } finally {
    ledger.close();
  }
}

Deno.test("senderId: the same id after a damaged ledger is set aside and a new one started", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sender-id-" });
  try {
    const first = idOf(dir);
    assert.match(first ?? "", /^[0-9a-f]{24}$/);
    damageLedger(dir);
    const ledger = Ledger.open(dir);
    try {
      assert.notEqual(ledger.rebuilt, null, "the damaged ledger was set aside");
      assert.equal(senderId(dir, { writable: true, ledger }), first);
    } finally {
      ledger.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("senderId: the same id after the ledger file is lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sender-id-" });
  try {
    const first = idOf(dir);
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.name.startsWith("ledger")) Deno.removeSync(join(dir, entry.name));
    }
    assert.equal(idOf(dir), first);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("senderId: an id an older version kept in the ledger is taken over into its file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sender-id-" });
  try {
    const old = "0123456789abcdef01234567";
    const ledger = Ledger.open(dir);
    ledger.setMeta("sender_id", old);
    ledger.close();
    assert.equal(idOf(dir), old);
    assert.equal(Deno.readTextFileSync(join(dir, SENDER_ID_FILE)).trim(), old);
    damageLedger(dir);
    assert.equal(idOf(dir), old, "kept after the ledger that held it is set aside");
    assert.deepEqual(
      [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".tmp")),
      [],
      "no temporary file left",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("senderId: where the id cannot be kept there is none (the host name's naming), said once in a WARN line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sender-id-" });
  const ledger = Ledger.open(dir);
  const logs = await captureLogs();
  try {
    // A folder in the file's place: neither read nor replaced (as an unwritable state_dir).
    Deno.mkdirSync(join(dir, SENDER_ID_FILE));
    assert.equal(senderId(dir, { writable: true, ledger }), null);
    const job = testJob("cam", {
      watch_path: "/data/cam",
      remote_base_path: "/mnt/dest",
      transfer_method: "local",
    });
    assert.equal(jobOwners(job, ledger).owner, hostJobOwner(job));
    assert.equal(jobOwners(job, null).owner, hostJobOwner(job));
    const warned = logs.records.filter((r) => r.level === "warning");
    assert.equal(warned.length, 1, "said once, for every job's transport asking");
    assert.equal(warned[0].properties.path, join(dir, SENDER_ID_FILE));
    assert.equal(warned[0].properties.why, "is a folder");
    assert.match(String(warned[0].rawMessage), /by this computer's host name/);
    assert.equal(warned[0].properties.todo, `remove the folder ${join(dir, SENDER_ID_FILE)}`);
    assert.equal(
      senderId(dir, { writable: false, ledger }),
      null,
      "a command that changes nothing",
    );
    assert.equal(logs.records.filter((r) => r.level === "warning").length, 1, "says nothing");
  } finally {
    await logs.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("senderId: a file removed since a run that recorded files: a new id, said in one WARN line; none at a first start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sender-id-" });
  const fresh = await Deno.makeTempDir({ prefix: "itx-sender-id-" });
  const path = join(dir, SENDER_ID_FILE);
  const logs = await captureLogs();
  try {
    assert.notEqual(idOf(fresh), null);
    assert.equal(logs.records.filter((r) => r.level === "warning").length, 0, "a first start");
    // An earlier run's ledger (another process: this one holds no id for the folder).
    const ledger = Ledger.open(dir);
    new FileRows(ledger, "cam", "/mnt/dest").enqueue("a.fits", {
      size: 1,
      mtimeMs: 0,
      destination: "20240315/a.fits",
    });
    ledger.close();
    const made = idOf(dir);
    assert.match(made ?? "", /^[0-9a-f]{24}$/);
    assert.equal(Deno.readTextFileSync(path), `${made}\n`);
    assert.equal(idOf(dir), made, "kept");
    const warned = logs.records.filter((r) => r.level === "warning");
    assert.equal(warned.length, 1);
    assert.equal(warned[0].properties.path, path);
    assert.match(String(warned[0].properties.why), /was missing, although the ledger beside it/);
    assert.match(String(warned[0].rawMessage), /a new id was made/);
    assert.match(String(warned[0].rawMessage), /no longer resumed or removed/);
  } finally {
    await logs.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(fresh, { recursive: true });
  }
});

for (const [what, text] of [["garbage", "not an id\n"], ["nothing (0 bytes)", ""]]) {
  Deno.test(`senderId: a file holding ${what}: a new id, said in one WARN line naming the file`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "itx-sender-id-" });
    const path = join(dir, SENDER_ID_FILE);
    const logs = await captureLogs();
    try {
      Deno.writeFileSync(path, new TextEncoder().encode(text));
      const id = idOf(dir);
      assert.match(id ?? "", /^[0-9a-f]{24}$/);
      assert.equal(Deno.readTextFileSync(path), `${id}\n`);
      assert.equal(idOf(dir), id, "kept");
      const warned = logs.records.filter((r) => r.level === "warning");
      assert.equal(warned.length, 1);
      assert.equal(warned[0].properties.path, path);
      assert.match(String(warned[0].rawMessage), /a new id was made/);
      assert.match(String(warned[0].rawMessage), /no longer resumed or removed/);
    } finally {
      await logs.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("senderId: a file removed while the daemon runs gets the id it holds back, not a new one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sender-id-" });
  const path = join(dir, SENDER_ID_FILE);
  const ledger = Ledger.open(dir);
  const logs = await captureLogs();
  try {
    const id = senderId(dir, { writable: true, ledger });
    assert.match(id ?? "", /^[0-9a-f]{24}$/);
    Deno.removeSync(path);
    keepSenderId(dir); // The state folder emptied: at the ledger's rebuild, and at the stop.
    assert.equal(Deno.readTextFileSync(path), `${id}\n`);
    Deno.removeSync(path);
    assert.equal(senderId(dir, { writable: true, ledger }), id, "when it is next needed");
    assert.equal(Deno.readTextFileSync(path), `${id}\n`);
    Deno.writeTextFileSync(path, "spoilt\n");
    assert.equal(senderId(dir, { writable: true, ledger }), id);
    assert.equal(logs.records.filter((r) => r.level === "warning").length, 0, "nothing lost");
  } finally {
    await logs.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("senderId: a command that changes nothing makes no id and writes none back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sender-id-" });
  try {
    assert.equal(senderId(dir, { writable: false }), null);
    keepSenderId(dir);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
