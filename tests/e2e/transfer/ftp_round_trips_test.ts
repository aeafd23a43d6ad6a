/**
 * The commands the `ftp` transport sends per file and per batch, counted in a real vsftpd's log
 * (FTP and FTPS): new files are looked for at the destination by one listing of their folder, not
 * one `SIZE` each (each command is a round trip on a long link), and what is found there is still
 * judged as before: a file the job did not send is never replaced, whatever its name. A connection
 * reused at once is not asked `NOOP` first (one dead is replaced all the same), a folder listed to
 * look for new files is not listed again to sweep it, and the catch-up lists no folder.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FtpTransport } from "../../../src/transfer/ftp/ftp.ts";
import { LISTING_FROM, MAX_LISTED_NAMES } from "../../../src/transfer/ftp/absent.ts";
import type { TransferItem, TransferOutcome } from "../../../src/transfer/transport.ts";
import { isTempName } from "../../../src/layout/destination.ts";
import { jobOwner, uploadFolderName } from "../../../src/transfer/temp_name.ts";
import { listFiles, randomBytes, sha256OfFile } from "../../helpers/files.ts";
import { startCuttingProxy } from "../../helpers/net.ts";
import { startVsftpd, type TestVsftpd } from "../../helpers/vsftpd.ts";
import { startSilentFtp } from "../../helpers/silent_ftp.ts";

type Setup = { server: TestVsftpd; src: string; dest: string };

/** Run `body` with a fresh vsftpd logging every command, a source folder and a remote folder. */
async function withLoggingVsftpd(tls: boolean, body: (setup: Setup) => Promise<void>) {
  const server = await startVsftpd({ tls, logCommands: true });
  const src = await Deno.makeTempDir();
  try {
    await body({ server, src, dest: await server.makeRemoteDir() });
  } finally {
    await server.stop();
    await Deno.remove(src, { recursive: true });
  }
}

/** New files (`noReplace`, as the pipeline sends them) `night/<name>` of distinct random bytes. */
async function newItems(src: string, night: string, names: string[]): Promise<TransferItem[]> {
  const items: TransferItem[] = [];
  for (const [index, name] of names.entries()) {
    const path = join(src, `${night}-${index}.bin`);
    await Deno.writeFile(path, randomBytes(1000 + index));
    const info = await Deno.stat(path);
    items.push({
      source: path,
      destination: `${night}/${name}`,
      size: info.size,
      mtimeMs: info.mtime!.getTime(),
      noReplace: true,
    });
  }
  return items;
}

/** Send `items` in one batch; the commands the server received for it. */
async function sendCounting(
  server: TestVsftpd,
  transport: FtpTransport,
  items: TransferItem[],
): Promise<{ outcomes: TransferOutcome[]; commands: string[] }> {
  const before = (await server.commands()).length;
  const outcomes = await transport.send(items, new AbortController().signal);
  return { outcomes, commands: (await server.commands()).slice(before) };
}

/** The folder listings among `commands` (`NLST`, or `LIST -a` as the sweep of leftovers lists). */
function listings(commands: string[]): string[] {
  return commands.filter((command) => /^(NLST|LIST)\b/.test(command));
}

/** The commands among `commands` that are `verb` on one of the final names of `items`. */
function onFinalNames(commands: string[], verb: string, dest: string, items: TransferItem[]) {
  const finals = new Set(items.map((item) => `${verb} ${dest}/${item.destination}`));
  return commands.filter((command) => finals.has(command));
}

async function assertArrived(dest: string, items: TransferItem[]): Promise<void> {
  for (const item of items) {
    const copy = join(dest, ...item.destination.split("/"));
    assert.equal(await sha256OfFile(copy), await sha256OfFile(item.source), item.destination);
  }
  const left = (await listFiles(dest)).filter((path) => path.split("/").some(isTempName));
  assert.deepEqual(left, [], "no temporary file is left");
}

const names = (count: number) => Array.from({ length: count }, (_, i) => `f${i}.fits`);

for (const tls of [false, true]) {
  for (const verify of ["size", "checksum"] as const) {
    const kind = `${tls ? "FTPS" : "FTP"}, verify_transfer: ${verify}`;
    Deno.test(`ftp (${kind}): new files are looked for by one listing per folder, no SIZE each`, async () => {
      await withLoggingVsftpd(tls, async ({ server, src, dest }) => {
        const job = server.job({ remote_base_path: dest, verify_transfer: verify });
        const transport = new FtpTransport(job);
        try {
          // 20 new files into one night folder that does not exist yet: a batch of 16, then 4.
          const items = await newItems(src, "20240315", names(20));
          const first = await sendCounting(server, transport, items.slice(0, 16));
          const second = await sendCounting(server, transport, items.slice(16));
          for (const { outcomes } of [first, second]) {
            assert.deepEqual(
              outcomes.map((o) => o.error?.message ?? null),
              outcomes.map(() => null),
            );
          }
          await assertArrived(dest, items);
          // Nothing asked of each final name before sending: one listing per folder.
          assert.deepEqual(onFinalNames(first.commands, "SIZE", dest, items), []);
          assert.equal(listings(first.commands).length, 1, "one listing");
          // Fewer files than a listing is worth: one SIZE each, as before.
          assert.ok(4 < LISTING_FROM);
          assert.equal(onFinalNames(second.commands, "SIZE", dest, items).length, 4);
          // The night folder made by the batch holds no leftovers to look for.
          assert.deepEqual(listings(second.commands), []);
          // Every copy still uploaded under a temporary name, verified, renamed into place.
          const count = (commands: string[], verb: string) =>
            commands.filter((c) => c.startsWith(`${verb} `)).length;
          for (const [batch, files] of [[first, 16], [second, 4]] as const) {
            assert.equal(count(batch.commands, "STOR"), files);
            // The copy's size, where no SHA-256 of it tells it.
            const copySizes = count(batch.commands, "SIZE") -
              onFinalNames(batch.commands, "SIZE", dest, items).length;
            assert.equal(copySizes, verify === "size" ? files : 0);
            assert.equal(count(batch.commands, "RETR"), verify === "checksum" ? files : 0);
            assert.equal(count(batch.commands, "RNTO"), files);
          }
        } finally {
          await transport.close();
        }
      });
    });
  }
}

Deno.test("ftp: what a listing finds is judged as before; odd names, hidden names, other files kept", async () => {
  assert.ok(8 >= LISTING_FROM, "one listing for the batch below");
  await withLoggingVsftpd(false, async ({ server, src, dest }) => {
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    try {
      const odd = ["-dash.fits", "with space.fits", "caf\u00e9 \u00e9toile.fits", ".hidden.fits"];
      const plain = ["a.fits", "b.fits"];
      const items = await newItems(src, "20240316", [...odd, ...plain, "taken.fits", "Case.fits"]);
      // Files the job did not send: one under a name of the batch, one under another case.
      const night = join(dest, "20240316");
      await Deno.mkdir(night);
      await Deno.chown(night, server.uid, server.gid);
      const foreign = randomBytes(4000);
      await Deno.writeFile(join(night, "taken.fits"), foreign);
      await Deno.writeFile(join(night, "case.fits"), foreign);
      const { outcomes, commands } = await sendCounting(server, transport, items);
      const taken = outcomes.find((o) => o.item.destination.endsWith("/taken.fits"))!;
      assert.equal(taken.occupied, "other", "the file there is not the job's");
      assert.deepEqual(await Deno.readFile(join(night, "taken.fits")), foreign, "left as it was");
      assert.deepEqual(await Deno.readFile(join(night, "case.fits")), foreign, "left as it was");
      const sent = items.filter((item) => item !== taken.item);
      assert.deepEqual(outcomes.filter((o) => o.item !== taken.item).map((o) => o.error), [
        ...sent.map(() => null),
      ]);
      assert.equal(listings(commands).length, 1, "one listing");
      await assertArrived(dest, sent);
      // The listing's names matched loosely are asked by SIZE, and hidden names always.
      const asked = onFinalNames(commands, "SIZE", dest, items).map((c) =>
        c.slice(c.lastIndexOf("/") + 1)
      );
      assert.deepEqual(asked.sort(), [".hidden.fits", "Case.fits", "taken.fits"]);
    } finally {
      await transport.close();
    }
  });
});

Deno.test("ftp: a folder too large to list is asked file by file, and not listed again", async () => {
  await withLoggingVsftpd(false, async ({ server, src, dest }) => {
    const night = join(dest, "20240317");
    await Deno.mkdir(night);
    await Deno.chown(night, server.uid, server.gid);
    for (let i = 0; i < MAX_LISTED_NAMES; i++) {
      await Deno.writeFile(join(night, `old${i}`), new Uint8Array());
    }
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    try {
      const items = await newItems(src, "20240317", names(2 * LISTING_FROM));
      const first = await sendCounting(server, transport, items.slice(0, LISTING_FROM));
      const second = await sendCounting(server, transport, items.slice(LISTING_FROM));
      for (const { outcomes } of [first, second]) {
        assert.ok(outcomes.every((o) => o.error === null));
      }
      await assertArrived(dest, items);
      assert.equal(onFinalNames(first.commands, "SIZE", dest, items).length, LISTING_FROM);
      assert.equal(onFinalNames(second.commands, "SIZE", dest, items).length, LISTING_FROM);
      assert.equal(listings(second.commands).length, 0, "not listed again");
    } finally {
      await transport.close();
    }
  });
});

Deno.test("ftp: a listing refused by vsftpd demanding TLS session reuse says the setting to change", async () => {
  const server = await startVsftpd({ sslReuse: true });
  const src = await Deno.makeTempDir();
  const transport = new FtpTransport(
    server.job({ remote_base_path: await server.makeRemoteDir() }),
  );
  try {
    const items = await newItems(src, "20240318", names(LISTING_FROM));
    for (const outcome of await transport.send(items, new AbortController().signal)) {
      assert.notEqual(outcome.error?.kind ?? "fatal", "fatal");
      assert.match(outcome.error!.message, /require_ssl_reuse=NO/, outcome.error!.message);
    }
  } finally {
    await transport.close();
    await server.stop();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("ftp: no folder above remote_base_path is entered or listed to look for new files", async () => {
  await withLoggingVsftpd(false, async ({ server, src, dest }) => {
    const base = `${dest}/new-base/`;
    const transport = new FtpTransport(server.job({ remote_base_path: base }));
    try {
      const items = await newItems(src, "20240319", names(LISTING_FROM));
      const { outcomes, commands } = await sendCounting(server, transport, items);
      assert.deepEqual(outcomes.map((o) => o.error), items.map(() => null));
      await assertArrived(`${dest}/new-base`, items);
      // Before sending (up to the first MKD): nothing outside the base.
      const look = commands.slice(0, commands.findIndex((c) => c.startsWith("MKD ")));
      const outside = look.filter((c) => /^(CWD|NLST|LIST)\b/.test(c) && !c.includes("/new-base"));
      assert.deepEqual(outside, []);
    } finally {
      await transport.close();
    }
  });
});

Deno.test("ftp: a server with HASH is asked to use SHA-256 once a connection, and no SIZE of a copy whose SHA-256 matches", async () => {
  const server = startSilentFtp({ hash: true });
  const src = await Deno.makeTempDir();
  const transport = new FtpTransport(server.job({ verify_transfer: "checksum" }));
  try {
    const items = await newItems(src, "20240320", names(3));
    const outcomes = await transport.send(items, new AbortController().signal);
    assert.deepEqual(outcomes.map((o) => o.error), items.map(() => null));
    for (const item of items) {
      assert.deepEqual(
        server.files.get(`/dest/${item.destination}`),
        await Deno.readFile(item.source),
      );
    }
    const sent = (verb: string) => server.received.filter((c) => c.startsWith(verb)).length;
    assert.equal(sent("HASH "), 3);
    assert.equal(sent("OPTS HASH"), 1);
    // Before sending, each new file's final name (fewer than a listing is worth); no copy's.
    assert.equal(sent("SIZE "), onFinalNames(server.received, "SIZE", "/dest", items).length);
  } finally {
    await transport.close();
    await server.stop();
    await Deno.remove(src, { recursive: true });
  }
});

for (const tls of [false, true]) {
  Deno.test(`ftp (${tls ? "FTPS" : "FTP"}): a connection reused at once is sent no NOOP; one found dead at its first command is replaced, and the batch goes on with nothing failed`, async () => {
    await withLoggingVsftpd(tls, async ({ server, src, dest }) => {
      const proxy = startCuttingProxy(server.port);
      const job = server.job({ remote_base_path: dest, ftp_port: proxy.port });
      const transport = new FtpTransport(job);
      try {
        const items = await newItems(src, "20240321", names(4 * LISTING_FROM));
        const batch = (n: number) => items.slice(n * LISTING_FROM, (n + 1) * LISTING_FROM);
        const noErrors = (outcomes: TransferOutcome[]) =>
          assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), outcomes.map(() => null));
        noErrors((await sendCounting(server, transport, batch(0))).outcomes);
        const reused = await sendCounting(server, transport, batch(1));
        noErrors(reused.outcomes);
        assert.deepEqual(reused.commands.filter((c) => c === "NOOP"), [], "no NOOP");
        assert.equal(await server.logins(), 1, "the connection was reused");
        // The connection dies without a word (its server side gone): it looks open until used.
        // First used by the look for files already there (new files)...
        proxy.cut();
        noErrors((await sendCounting(server, transport, batch(2))).outcomes);
        assert.equal(await server.logins(), 2, "a new login replaced the dead connection");
        // ...or by the delivery itself (files the ledger gives a copy: nothing to look for).
        proxy.cut();
        const known = batch(3).map((item) => ({ ...item, noReplace: false }));
        noErrors((await sendCounting(server, transport, known)).outcomes);
        assert.equal(await server.logins(), 3);
        // The server restarted (its sessions gone, as they closed): a new login, no NOOP either.
        await server.kill();
        await server.restart();
        const again = await newItems(src, "20240326", names(LISTING_FROM));
        const restarted = await sendCounting(server, transport, again);
        noErrors(restarted.outcomes);
        assert.deepEqual(restarted.commands.filter((c) => c === "NOOP"), [], "no NOOP");
        await assertArrived(dest, [...items, ...again]);
      } finally {
        await transport.close();
        await proxy.stop();
      }
    });
  });
}

Deno.test("ftp: a connection idle long enough to have been forgotten on the way answers NOOP first, once a batch", async () => {
  await withLoggingVsftpd(false, async ({ server, src, dest }) => {
    // Any idle time is long enough here.
    const job = server.job({ remote_base_path: dest });
    const transport = new FtpTransport(job, { noopAfterIdleMs: 0 });
    try {
      const items = await newItems(src, "20240322", names(2 * LISTING_FROM));
      const first = await sendCounting(server, transport, items.slice(0, LISTING_FROM));
      const second = await sendCounting(server, transport, items.slice(LISTING_FROM));
      for (const { outcomes } of [first, second]) {
        assert.ok(outcomes.every((o) => o.error === null));
      }
      // One NOOP as the batch takes the connection, not one more between the look and the upload.
      assert.deepEqual(second.commands.filter((c) => c === "NOOP"), ["NOOP"]);
      assert.equal(second.commands[0], "NOOP");
      assert.equal(await server.logins(), 1);
      await assertArrived(dest, items);
    } finally {
      await transport.close();
    }
  });
});

for (const tls of [false, true]) {
  Deno.test(`ftp (${tls ? "FTPS" : "FTP"}): a connection's first batch into a folder that exists lists it once, to look for its new files and for leftovers to sweep`, async () => {
    await withLoggingVsftpd(tls, async ({ server, src, dest }) => {
      const job = server.job({ remote_base_path: dest });
      const night = join(dest, "20240323");
      // Another's file, and the upload folder of one of the job's batches that was cut off.
      const leftover = join(night, uploadFolderName(jobOwner(job)));
      await Deno.mkdir(leftover, { recursive: true });
      await Deno.writeFile(join(night, "other.fits"), randomBytes(3000));
      await Deno.writeFile(join(leftover, "f0.fits"), randomBytes(500));
      for (const path of [night, leftover, join(night, "other.fits"), join(leftover, "f0.fits")]) {
        await Deno.chown(path, server.uid, server.gid);
      }
      const other = await Deno.readFile(join(night, "other.fits"));
      const transport = new FtpTransport(job);
      try {
        const items = await newItems(src, "20240323", names(LISTING_FROM));
        const { outcomes, commands } = await sendCounting(server, transport, items);
        assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), items.map(() => null));
        // The night folder listed once (the leftover's own content is listed to remove it).
        const ofNight = listings(commands).filter((c) => !c.includes("/.incoming-"));
        assert.deepEqual(ofNight, ["LIST -a"], "one listing");
        // The listing still told the new files absent (no SIZE each) and the leftover to sweep.
        assert.deepEqual(onFinalNames(commands, "SIZE", dest, items), []);
        assert.equal(await Deno.stat(leftover).then(() => true, () => false), false, "swept");
        assert.deepEqual(await Deno.readFile(join(night, "other.fits")), other, "left as it was");
        await assertArrived(dest, items);
      } finally {
        await transport.close();
      }
    });
  });
}

Deno.test("ftp: a reused connection's batch of new files enters their folder once, for the look and the upload", async () => {
  await withLoggingVsftpd(true, async ({ server, src, dest }) => {
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    try {
      const items = await newItems(src, "20240327", names(2 * LISTING_FROM));
      const first = await sendCounting(server, transport, items.slice(0, LISTING_FROM));
      const second = await sendCounting(server, transport, items.slice(LISTING_FROM));
      for (const { outcomes } of [first, second]) {
        assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), outcomes.map(() => null));
      }
      assert.equal(await server.logins(), 1, "the connection was reused");
      // The look's listing enters the folder; the upload checks it there (PWD), not entering it
      // again. Before the fix: CWD twice.
      const entered = second.commands.filter((c) => c === `CWD ${dest}/20240327`);
      assert.deepEqual(entered, [`CWD ${dest}/20240327`], "entered once");
      assert.ok(second.commands.includes("PWD"), "where the server shows it, checked");
      assert.deepEqual(onFinalNames(second.commands, "SIZE", dest, items), [], "one listing");
      await assertArrived(dest, items);
    } finally {
      await transport.close();
    }
  });
});

Deno.test("ftp: a LIST -a that does not show its folder whole (no . or ..) tells no file absent: each is asked, another's file is kept", async () => {
  // This server lists nothing (and refuses NLST), whatever the folder holds.
  const server = startSilentFtp();
  const src = await Deno.makeTempDir();
  const transport = new FtpTransport(server.job({}));
  try {
    const items = await newItems(src, "20240325", names(LISTING_FROM));
    const foreign = randomBytes(5000);
    server.files.set(`/dest/${items[0].destination}`, foreign);
    const outcomes = await transport.send(items, new AbortController().signal);
    assert.equal(outcomes[0].occupied, "other", "the file there is found, not taken for absent");
    assert.deepEqual(server.files.get(`/dest/${items[0].destination}`), foreign, "kept");
    for (const { item, error } of outcomes.slice(1)) {
      assert.equal(error, null, error?.message);
      assert.deepEqual(
        server.files.get(`/dest/${item.destination}`),
        await Deno.readFile(item.source),
      );
    }
    assert.ok(server.received.includes("LIST -a"), server.received.join(", "));
    assert.equal(onFinalNames(server.received, "SIZE", "/dest", items).length, items.length);
  } finally {
    await transport.close();
    await server.stop();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("ftp: files sent before (the catch-up) are asked each by SIZE, no folder listed", async () => {
  await withLoggingVsftpd(false, async ({ server, src, dest }) => {
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    try {
      const items = await newItems(src, "20240324", names(2 * LISTING_FROM));
      const sent = await transport.send(items, new AbortController().signal);
      assert.ok(sent.every((o) => o.error === null));
      await assertArrived(dest, items);
      await Deno.remove(join(dest, ...items[3].destination.split("/")));
      const before = (await server.commands()).length;
      const sizes = await transport.destinationSizes(
        items.map((item) => item.destination),
        new AbortController().signal,
        { mostlyThere: true },
      );
      const commands = (await server.commands()).slice(before);
      assert.deepEqual(
        items.map((item) => sizes.get(item.destination)),
        items.map((item, n) => n === 3 ? null : item.size),
      );
      assert.deepEqual(listings(commands), [], "no listing");
      assert.equal(onFinalNames(commands, "SIZE", dest, items).length, items.length);
    } finally {
      await transport.close();
    }
  });
});
