/**
 * The `ftp` transport against a real vsftpd on 127.0.0.1 (FTPS with its own
 * certificate, and plain FTP): exact bytes for a burst and for real FITS
 * files over one connection, hostile names, a refused login, an untrusted
 * certificate, TLS refused, and a server killed in the middle of an upload.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import { failureScope } from "../../../src/errors.ts";
import { FtpTransport } from "../../../src/transfer/ftp/ftp.ts";
import { probeFtpDestination } from "../../../src/transfer/ftp/probe.ts";
import { isTempName } from "../../../src/layout/destination.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { startVsftpd, type TestVsftpd, type VsftpdOptions } from "../../helpers/vsftpd.ts";

const FITS_DIR = new URL("../../fixtures/fits/", import.meta.url).pathname;

/** Write `bytes` under `root/rel` and describe it as an item to `destination`. */
async function item(
  root: string,
  rel: string,
  bytes: Uint8Array,
  destination = `20240315/${rel}`,
): Promise<TransferItem> {
  const path = join(root, rel);
  await Deno.writeFile(path, bytes);
  const info = await Deno.stat(path);
  return { source: path, destination, size: info.size, mtimeMs: info.mtime!.getTime() };
}

async function assertArrived(dest: string, items: TransferItem[]): Promise<void> {
  for (const it of items) {
    const arrived = join(dest, ...it.destination.split("/"));
    assert.equal(await sha256OfFile(arrived), await sha256OfFile(it.source), it.destination);
  }
  const entries = [...await listFiles(dest), ...await listFolders(dest)];
  const leftovers = entries.filter((p) => p.split("/").some(isTempName));
  assert.deepEqual(leftovers, [], "no temporary file or upload folder is left");
}

type VsftpdSetup = { server: TestVsftpd; src: string; dest: string };

/**
 * Run `body` with a fresh vsftpd, a source folder and a remote folder the
 * login owns; the server is stopped and the source folder removed after.
 */
async function withVsftpd(
  options: VsftpdOptions,
  body: (setup: VsftpdSetup) => Promise<void>,
): Promise<void> {
  const server = await startVsftpd(options);
  const src = await Deno.makeTempDir();
  try {
    const dest = await server.makeRemoteDir();
    await body({ server, src, dest });
  } finally {
    await server.stop();
    await Deno.remove(src, { recursive: true });
  }
}

async function send(job: JobConfig, items: TransferItem[]) {
  const transport = new FtpTransport(job);
  try {
    return await transport.send(items, new AbortController().signal);
  } finally {
    await transport.close();
  }
}

/**
 * This process's open descriptors on files below `folder` or on connections
 * to `port` (counted by name: the tests run in parallel in one process).
 */
function openTo(folder: string, port: number): number {
  const sockets = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of Deno.readTextFileSync(table).split("\n").slice(1)) {
      const columns = line.trim().split(/\s+/);
      if (columns.length > 9 && parseInt(columns[2].split(":")[1], 16) === port) {
        sockets.add(`socket:[${columns[9]}]`);
      }
    }
  }
  let count = 0;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      continue; // closed meanwhile
    }
    if (target.startsWith(`${folder}/`) || sockets.has(target)) count++;
  }
  return count;
}

Deno.test("ftp: a burst and real FITS files arrive with identical bytes over one FTPS connection", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const logs = await captureLogs();
    try {
      const items: TransferItem[] = [];
      for (let i = 0; i < 40; i++) {
        items.push(
          await item(
            src,
            `burst_${i}.fits`,
            randomBytes(1000 + i * 997),
            `2024031${i % 2}/burst_${i}.fits`,
          ),
        );
      }
      for (const entry of Deno.readDirSync(FITS_DIR)) {
        if (!entry.name.endsWith(".fits")) continue;
        const bytes = await Deno.readFile(join(FITS_DIR, entry.name));
        items.push(await item(src, entry.name, bytes, `20240316/fits/${entry.name}`));
      }
      items.push(await item(src, "empty.fits", new Uint8Array(0)));
      items.push(await item(src, "big.fits", randomBytes(5 * 1024 * 1024 + 17)));
      const transport = new FtpTransport(server.job({ remote_base_path: dest }));
      try {
        // Batches as the daemon hands them out, one after the other.
        for (let i = 0; i < items.length; i += transport.maxBatchFiles) {
          const outcomes = await transport.send(
            items.slice(i, i + transport.maxBatchFiles),
            new AbortController().signal,
          );
          assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), outcomes.map(() => null));
        }
      } finally {
        await transport.close();
      }
      await assertArrived(dest, items);
      // vsftpd offers neither HASH nor XSHA256: each copy is read back; said once, not per file.
      assert.equal(logs.count("info", "each arrival is read back"), 1);
      // Permission bits as the source's, without write for group and others.
      await Deno.chmod(items[0].source, 0o666);
      await Deno.chmod(items[1].source, 0o600);
      const modes = await send(server.job({ remote_base_path: dest }), items.slice(0, 2));
      assert.deepEqual(modes.map((o) => o.error), [null, null]);
      for (const [i, mode] of [0o644, 0o600].entries()) {
        assert.equal((await Deno.stat(join(dest, items[i].destination))).mode! & 0o777, mode);
      }
      await waitFor(
        () => openTo(src, server.port) === 0,
        5_000,
        "the sources and sockets to close",
      );
      assert.equal(
        await server.logins(),
        2,
        "one login for the whole burst (and one for the re-send)",
      );
    } finally {
      await logs.stop();
    }
  }));

Deno.test("ftp: a night folder the login may not write: the error says to check that, nothing is left", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const night = join(dest, "20240315");
    await Deno.mkdir(night);
    await Deno.chmod(night, 0o555);
    const outcomes = await send(server.job({ remote_base_path: dest }), [
      await item(src, "locked.fits", randomBytes(1000)),
    ]);
    assert.match(
      outcomes[0].error?.message ?? "",
      /cannot make the upload folder .*: check that the login may write in .*\/20240315;/,
    );
    assert.deepEqual([...Deno.readDirSync(night)], [], "nothing is left in it");
  }));

Deno.test("ftp: a destination folder the login may not write into: a night folder or an upload folder refused there says so, in the words that pause the job; nothing is left", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    await Deno.chmod(dest, 0o555);
    try {
      const outcomes = await send(server.job({ remote_base_path: dest }), [
        await item(src, "night.fits", randomBytes(1000)),
        // Into the destination folder itself: its upload folder is made there.
        await item(src, "flat.fits", randomBytes(1000), "flat.fits"),
      ]);
      for (const { error } of outcomes) {
        // Before the fix: "cannot create folder .../20240315 (550 Create directory operation
        // failed.): check that no file has that name...", the file's own failure.
        assert.match(
          error?.message ?? "",
          new RegExp(
            `the remote user on FTP server itx-ftp@127\\.0\\.0\\.1:${server.port} may not write ` +
              `into the destination folder ${dest} \\(the server refused a test write there too: ` +
              "553 Could not create file\\.\\), where every file's folder is made: fix the owner or " +
              "permissions of the destination folder, or change remote_base_path$",
          ),
        );
        assert.equal(failureScope(error!), "destination");
        assert.equal(error?.kind, "retry-later");
      }
    } finally {
      await Deno.chmod(dest, 0o755);
    }
    assert.deepEqual([...Deno.readDirSync(dest)], [], "nothing is left in it");
  }));

Deno.test("ftp: a server that refuses renames: the error says the copy could not take its name, and why; nothing is left, no final name", () =>
  withVsftpd({ deniedCommands: ["RNFR", "RNTO"] }, async ({ server, src, dest }) => {
    const outcomes = await send(server.job({ remote_base_path: dest }), [
      await item(src, "frame 1.fits", randomBytes(300_000)),
    ]);
    // Before the fix: "upload refused (550 Permission denied.)", of an upload that had worked.
    assert.match(
      outcomes[0].error?.message ?? "",
      /the copy could not be renamed to \S*\/20240315\/frame 1\.fits \(550 Permission denied\.\): check that the login may rename files in \S*\/20240315 \(RNFR, RNTO\)$/,
    );
    assert.equal(outcomes[0].error?.kind, "retry-later");
    assert.deepEqual(await listFiles(dest), [], "no copy, no final name");
    assert.deepEqual(await listFolders(dest), ["20240315"], "no upload folder");
  }));

Deno.test("ftp: a file where a subfolder of the night goes: the error says that file is in the way, as the file's own failure", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const night = join(dest, "20240315");
    await Deno.mkdir(night);
    await Deno.chown(night, server.uid, server.gid);
    await Deno.writeTextFile(join(night, "flats"), "in the way");
    await Deno.mkdir(join(src, "flats"));
    const outcomes = await send(server.job({ remote_base_path: dest }), [
      await item(src, "flats/f1.fits", randomBytes(1000)),
    ]);
    // Before: "cannot create folder .../flats (550 Create directory operation failed.): check
    // that no file has that name and that the login may write in ...", at ERROR.
    assert.match(
      outcomes[0].error?.message ?? "",
      /a file named flats is in the way at \S*\/20240315\/flats, where a folder must be: rename or remove it there$/,
    );
    assert.equal(outcomes[0].error?.kind, "retry");
    assert.equal(failureScope(outcomes[0].error!), "file");
    assert.equal(await Deno.readTextFile(join(night, "flats")), "in the way", "left alone");
  }));

Deno.test("ftp: hostile names arrive intact; a name with a line break is refused clearly", () =>
  withVsftpd({}, async ({ server, src, dest: remoteDir }) => {
    // The base folder's own name is hostile too, and does not exist yet.
    const dest = join(remoteDir, "-up load's $(x)");
    const names = [
      "with space.fits",
      'it\'s "quoted".fits',
      "$(touch pwned).fits",
      "-leading dash.fits",
      " leading space.fits",
      "ünïcødé 星.fits",
      "semi;colon&amp|pipe.fits",
      "back\\slash.fits",
    ];
    const good: TransferItem[] = [];
    for (const [i, name] of names.entries()) {
      good.push(await item(src, `f${i}`, randomBytes(2000 + i), `20240315/${name}`));
    }
    const newline = await item(src, "nl", randomBytes(10), "20240315/line\nbreak.fits");
    const outcomes = await send(server.job({ remote_base_path: dest }), [
      good[0],
      newline,
      ...good.slice(1),
    ]);
    assert.equal(outcomes[1].error?.kind, "fatal");
    assert.match(outcomes[1].error!.message, /line break, which FTP cannot carry/);
    for (const outcome of [outcomes[0], ...outcomes.slice(2)]) {
      assert.equal(outcome.error, null, outcome.error?.message);
    }
    await assertArrived(dest, good);
    assert.deepEqual(
      (await listFiles(dest)).sort(),
      names.map((name) => `20240315/${name}`).sort(),
    );
    await assert.rejects(Deno.stat("pwned"));
  }));

Deno.test("ftp: a path longer than the server takes in a command is refused for good, saying so; the other files arrive", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const deep = Array.from({ length: 16 }, (_, i) => `${i}`.padEnd(250, "x")).join("/");
    const long = await item(src, "long", randomBytes(100), `20240315/${deep}/y.fits`);
    const short = await item(src, "short", randomBytes(2000), "20240315/short.fits");
    const outcomes = await send(server.job({ remote_base_path: dest }), [long, short]);
    // Before: "cannot make the upload folder … (500 Input line too long.): check that the login
    // may write in …", tried again every few minutes for ever.
    assert.equal(outcomes[0].error?.kind, "fatal", outcomes[0].error?.message);
    assert.match(
      outcomes[0].error!.message,
      /the FTP server refuses a command this long \(500 Input line too long\.\): the path at the destination is too long \(\d+ characters there\); shorten the folder or file names$/,
    );
    // vsftpd drops the connection after that answer: a file sent over it meanwhile goes again.
    if (outcomes[1].error !== null) {
      assert.equal(outcomes[1].error.kind, "retry", outcomes[1].error.message);
      const [again] = await send(server.job({ remote_base_path: dest }), [short]);
      assert.equal(again.error, null, again.error?.message);
    }
    await assertArrived(dest, [short]);
  }));

Deno.test("ftp: a wrong password fails every item of the batch once, fatal, with the reason", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const items = [
      await item(src, "a.fits", randomBytes(100)),
      await item(src, "b.fits", randomBytes(100)),
    ];
    const variable = "ITX_TEST_FTP_WRONG_PASSWORD";
    Deno.env.set(variable, "not the password");
    const outcomes = await send(
      server.job({
        remote_base_path: dest,
        ftp_password_file: null,
        ftp_password_env: variable,
      }),
      items,
    );
    for (const outcome of outcomes) {
      assert.equal(outcome.error?.kind, "fatal");
      assert.match(
        outcome.error!.message,
        /refused the login .*check remote_user and the password/,
      );
      assert.doesNotMatch(outcome.error!.message, /not the password/);
    }
    const log = await Deno.readTextFile(join(server.dir, "vsftpd.log"));
    assert.equal(log.split("\n").filter((line) => line.includes("FAIL LOGIN")).length, 1);
    assert.deepEqual(await listFiles(dest), []);
  }));

Deno.test("ftp: the password from an environment variable logs in", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const variable = "ITX_TEST_FTP_PASSWORD";
    Deno.env.set(variable, (await Deno.readTextFile(server.passwordFile)).trimEnd());
    const items = [await item(src, "a.fits", randomBytes(4321))];
    const outcomes = await send(
      server.job({ remote_base_path: dest, ftp_password_file: null, ftp_password_env: variable }),
      items,
    );
    assert.equal(outcomes[0].error, null, outcomes[0].error?.message);
    await assertArrived(dest, items);
  }));

Deno.test("ftp: a password file and a CA file saved with a byte order mark (Windows Notepad) log in", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf]);
    const withBom = async (name: string, from: string) => {
      const path = join(src, name);
      await Deno.writeFile(path, new Uint8Array([...bom, ...await Deno.readFile(from)]), {
        mode: 0o600,
      });
      return path;
    };
    const passwordFile = await withBom("password.txt", server.passwordFile);
    const caFile = await withBom("ca.pem", server.certFile);
    const items = [await item(src, "a.fits", randomBytes(2345))];
    const outcomes = await send(
      server.job({ remote_base_path: dest, ftp_password_file: passwordFile, ftp_ca_file: caFile }),
      items,
    );
    assert.equal(outcomes[0].error, null, outcomes[0].error?.message);
    await assertArrived(dest, items);
  }));

Deno.test("ftp: a relative remote_base_path goes into the login's folder and is described as /~/ there", async () => {
  const server = await startVsftpd();
  const src = await Deno.makeTempDir();
  const base = `itx-relative-${crypto.randomUUID()}/cam 1`;
  const home = await new Deno.Command("getent", { args: ["passwd", "itx-ftp"] }).output();
  const homeDir = new TextDecoder().decode(home.stdout).split(":")[5];
  try {
    const items = [await item(src, "a b.fits", randomBytes(1234))];
    const transport = new FtpTransport(server.job({ remote_base_path: base }));
    try {
      const outcomes = await transport.send(items, new AbortController().signal);
      assert.equal(outcomes[0].error, null, outcomes[0].error?.message);
      assert.equal(
        transport.describeTarget(items[0].destination),
        `ftps://itx-ftp@127.0.0.1:${server.port}/~/${base}/20240315/a b.fits`,
      );
    } finally {
      await transport.close();
    }
    await assertArrived(join(homeDir, base), items);
  } finally {
    await Deno.remove(join(homeDir, base.split("/")[0]), { recursive: true }).catch(() => {});
    await server.stop();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("ftp: an SSH server at ftp_port (SFTP taken for FTP) is fatal at once and points to scp or rsync", async () => {
  const sshd = await startSshd();
  const vsftpd = await startVsftpd();
  const src = await Deno.makeTempDir();
  try {
    const job = vsftpd.job({ remote_base_path: "/tmp", ftp_port: sshd.port });
    const outcomes = await send(job, [await item(src, "a.fits", randomBytes(100))]);
    assert.equal(outcomes[0].error?.kind, "fatal");
    assert.match(
      outcomes[0].error!.message,
      new RegExp(
        `FTP server itx-ftp@127\\.0\\.0\\.1:${sshd.port}: connect: port ${sshd.port} answers as an SSH ` +
          `server \\("SSH-2\\.0-OpenSSH[^"]*"\\), not FTP: for SFTP or SSH use transfer_method scp ` +
          "or rsync; else check ftp_port$",
      ),
    );
    assert.equal(
      failureScope(outcomes[0].error!),
      "connection",
      "the whole destination, not one file",
    );
  } finally {
    await vsftpd.stop();
    await sshd.stop();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("ftp: a server that sends no greeting (implicit FTPS) is given up before the transfer timeout, saying why", () =>
  withVsftpd({ implicitTls: true }, async ({ server, src, dest }) => {
    // Half the transfer timeout where that is less than a minute.
    const job = server.job({ remote_base_path: dest, transfer_timeout_seconds: 30 });
    const outcomes = await send(job, [await item(src, "a.fits", randomBytes(100))]);
    assert.equal(outcomes[0].error?.kind, "retry");
    assert.match(
      outcomes[0].error!.message,
      new RegExp(
        `connect: port ${server.port} took the connection but sent no FTP greeting within 15 s: a server ` +
          "that expects TLS at once \\(implicit FTPS, usually on port 990\\) is not supported: " +
          "give its explicit FTPS port \\(usually 21\\) in ftp_port",
      ),
    );
    assert.equal(
      failureScope(outcomes[0].error!),
      "connection",
      "the whole destination, not one file",
    );
  }));

Deno.test("ftp: an upload-only login (no downloads): checksum without HASH says the copy cannot be read back, doctor fails it; size works", () =>
  withVsftpd({ downloads: false }, async ({ server, src, dest }) => {
    const items = [await item(src, "a b.fits", randomBytes(3000))];
    const refused =
      /the server refuses to send the copy back \(RETR: 550 .*\), which verify_transfer: checksum needs where it offers no HASH or XSHA256: allow the login to download, or set verify_transfer: size/;
    const outcomes = await send(server.job({ remote_base_path: dest }), items);
    assert.equal(outcomes[0].error?.kind, "fatal");
    assert.match(outcomes[0].error!.message, refused);
    assert.deepEqual(await listFiles(dest), [], "the copy that could not be checked is removed");
    const checks = await probeFtpDestination(server.job({ remote_base_path: dest }));
    const checksum = checks.find((check) => check.check === "checksum");
    assert.equal(checksum?.verdict, "fail", JSON.stringify(checks));
    assert.match(checksum!.detail, refused);
    const sized = await send(
      server.job({ remote_base_path: dest, verify_transfer: "size" }),
      items,
    );
    assert.equal(sized[0].error, null, sized[0].error?.message);
    await assertArrived(dest, items);
  }));

Deno.test("ftp: an untrusted certificate is fatal and names ftp_ca_file", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const outcomes = await send(server.job({ remote_base_path: dest, ftp_ca_file: null }), [
      await item(src, "a.fits", randomBytes(100)),
    ]);
    assert.equal(outcomes[0].error?.kind, "fatal");
    assert.match(outcomes[0].error!.message, /certificate is not trusted.*ftp_ca_file/);
    assert.equal(await server.logins(), 0, "no password went to an untrusted server");
  }));

Deno.test("ftp: a trusted certificate made for another name is fatal and says to fix the name, not ftp_ca_file", () =>
  withVsftpd({ certNames: "DNS:archive.example.org" }, async ({ server, src, dest }) => {
    const outcomes = await send(server.job({ remote_base_path: dest }), [
      await item(src, "a.fits", randomBytes(100)),
    ]);
    assert.equal(outcomes[0].error?.kind, "fatal");
    assert.match(
      outcomes[0].error!.message,
      /its TLS certificate is not made for 127\.0\.0\.1 \(.*\); set remote_host to a name the certificate holds, or give the server a certificate for 127\.0\.0\.1$/,
    );
    assert.doesNotMatch(outcomes[0].error!.message, /not trusted|ftp_ca_file/);
    assert.equal(
      failureScope(outcomes[0].error!),
      "connection",
      "the whole destination, not one file",
    );
    assert.equal(await server.logins(), 0, "no password went to a server of another name");
  }));

Deno.test("ftp: an ftp_ca_file that changed into no certificate (a DER file, a folder) is fatal and says so", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const der = join(src, "ca.der");
    await Deno.writeFile(der, new Uint8Array([0x30, 0x82, 0x03, 0x1a]));
    const cases: Array<[string, RegExp]> = [
      [
        der,
        /ftp_ca_file .*ca\.der holds no PEM certificate \(no "-----BEGIN CERTIFICATE-----" line\)/,
      ],
      [src, /ftp_ca_file .* is a folder, not a file; give the file holding the certificate/],
    ];
    for (const [ca, expected] of cases) {
      const outcomes = await send(server.job({ remote_base_path: dest, ftp_ca_file: ca }), [
        await item(src, "a.fits", randomBytes(100)),
      ]);
      assert.equal(outcomes[0].error?.kind, "fatal");
      assert.match(outcomes[0].error!.message, expected);
    }
    assert.equal(await server.logins(), 0, "no password went to an untrusted server");
  }));

Deno.test("ftp: a ftp_password_file that became a folder is fatal and says so, not chmod", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const folder = join(src, "password");
    await Deno.mkdir(folder, { mode: 0o700 });
    const outcomes = await send(
      server.job({ remote_base_path: dest, ftp_password_file: folder }),
      [await item(src, "a.fits", randomBytes(100))],
    );
    assert.equal(outcomes[0].error?.kind, "fatal");
    assert.match(
      outcomes[0].error!.message,
      /ftp_password_file .*password is a folder, not a file; give the file holding the password/,
    );
    assert.doesNotMatch(outcomes[0].error!.message, /chmod|EISDIR/);
  }));

Deno.test("ftp: TLS required against a server without TLS is a clear fatal error; ftp_tls off works", () =>
  withVsftpd({ tls: false }, async ({ server, src, dest }) => {
    const items = [await item(src, "a.fits", randomBytes(3000))];
    const refused = await send(server.job({ remote_base_path: dest, ftp_tls: "required" }), items);
    assert.equal(refused[0].error?.kind, "fatal");
    assert.match(refused[0].error!.message, /refused TLS .*ftp_tls: off/);
    assert.equal(await server.logins(), 0, "no password sent in clear text");
    assert.deepEqual(await listFiles(dest), []);

    const plain = await send(server.job({ remote_base_path: dest, ftp_tls: "off" }), items);
    assert.equal(plain[0].error, null, plain[0].error?.message);
    await assertArrived(dest, items);
  }));

Deno.test("ftp: a server killed mid-upload leaves no final name; the file arrives once it is back", () =>
  // 400 kB/s: the 3 MB upload takes long enough to be cut in the middle.
  withVsftpd({ maxRateBytes: 400_000 }, async ({ server, src, dest }) => {
    const items = [await item(src, "big.fits", randomBytes(1536 * 1024))];
    const job = server.job({ remote_base_path: dest });
    const transport = new FtpTransport(job);
    try {
      const sending = transport.send(items, new AbortController().signal);
      await waitFor(
        async () => {
          const files = await listFiles(dest).catch(() => []);
          if (files.length === 0) return false;
          return (await Deno.stat(join(dest, files[0]))).size > 100_000;
        },
        20_000,
        "a partial upload",
      );
      await server.kill();
      const [cut] = await sending;
      assert.equal(cut.error?.kind, "retry", cut.error?.message);
      const present = await listFiles(dest);
      assert.ok(!present.includes("20240315/big.fits"), "nothing under the final name");
      assert.ok(present.every((p) => p.split("/").some(isTempName)), present.join(", "));

      await server.restart();
      const [again] = await transport.send(items, new AbortController().signal);
      assert.equal(again.error, null, again.error?.message);
    } finally {
      await transport.close();
    }
    // The partial file of the cut attempt was swept as well.
    await assertArrived(dest, items);
  }));

Deno.test("ftp: vsftpd demanding TLS session reuse fails the upload with the setting to change", () =>
  withVsftpd({ sslReuse: true }, async ({ server, src, dest }) => {
    const [outcome] = await send(server.job({ remote_base_path: dest }), [
      await item(src, "a.fits", randomBytes(1000)),
    ]);
    assert.equal(outcome.error?.kind, "retry");
    assert.match(outcome.error!.message, /require_ssl_reuse=NO/, outcome.error!.message);
    assert.ok(!(await listFiles(dest)).includes("20240315/a.fits"));
  }));

Deno.test("ftp: a password file others can read is refused before any login", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    await Deno.chmod(server.passwordFile, 0o644);
    const [outcome] = await send(server.job({ remote_base_path: dest }), [
      await item(src, "a.fits", randomBytes(100)),
    ]);
    assert.equal(outcome.error?.kind, "fatal");
    assert.match(
      outcome.error!.message,
      /can be read or written by others \(mode 0644\); run: chmod 600/,
    );
    assert.equal(await server.logins(), 0);
  }));

Deno.test("ftp: an aborted send stops the upload and leaves nothing under the final name", () =>
  withVsftpd({ maxRateBytes: 300_000 }, async ({ server, src, dest }) => {
    const items = [await item(src, "big.fits", randomBytes(1024 * 1024))];
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    const controller = new AbortController();
    try {
      const sending = transport.send(items, controller.signal);
      await waitFor(async () => (await listFiles(dest).catch(() => [])).length > 0, 20_000);
      controller.abort(new Error("stopping"));
      await assert.rejects(sending, /stopping/);
      assert.ok(!(await listFiles(dest)).includes("20240315/big.fits"));
      // The connection was dropped, not reused half-way: the next send works.
      const [again] = await transport.send(items, new AbortController().signal);
      assert.equal(again.error, null, again.error?.message);
    } finally {
      await transport.close();
    }
    await assertArrived(dest, items);
  }));

Deno.test("ftp: concurrent batches use a connection each; later batches reuse them, or reconnect after the server dropped an idle one", () =>
  withVsftpd({ idleSeconds: 2 }, async ({ server, src, dest }) => {
    const items: TransferItem[] = [];
    for (let i = 0; i < 12; i++) {
      items.push(await item(src, `c${i}.fits`, randomBytes(20_000 + i)));
    }
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    const signal = new AbortController().signal;
    try {
      const results = await Promise.all([
        transport.send(items.slice(0, 4), signal),
        transport.send(items.slice(4, 8), signal),
      ]);
      assert.deepEqual(results.flat().map((o) => o.error), Array(8).fill(null));
      assert.equal(await server.logins(), 2);
      const [later] = await transport.send(items.slice(8, 9), signal);
      assert.equal(later.error, null);
      assert.equal(await server.logins(), 2, "an idle connection was reused");
      // The server drops idle connections after 2 s: the next batch logs in again.
      await new Promise((resolve) => setTimeout(resolve, 6000));
      const afterIdle = await transport.send(items.slice(9), signal);
      assert.deepEqual(afterIdle.map((o) => o.error?.message ?? null), [null, null, null]);
      assert.equal(await server.logins(), 3);
    } finally {
      await transport.close();
    }
    await assertArrived(dest, items);
  }));

Deno.test("ftp: the upload folder of a batch cut off is removed by the next batch into its folder, also over a connection that swept that folder before the cut", () =>
  // 300 kB/s: each upload takes long enough for two batches to overlap, and to be cut.
  withVsftpd({ maxRateBytes: 300_000 }, async ({ server, src, dest }) => {
    const transport = new FtpTransport(
      server.job({ remote_base_path: dest, max_concurrent_transfers: 2 }),
    );
    const signal = new AbortController().signal;
    const leftovers = async () =>
      [...await listFiles(dest), ...await listFolders(dest)].filter((p) =>
        p.split("/").some(isTempName)
      );
    try {
      // Two batches at once into the night folder: two connections, each sweeps it once.
      const a1 = await item(src, "a1.fits", randomBytes(300_000));
      const a2 = await item(src, "a2.fits", randomBytes(300_000));
      const first = await Promise.all([transport.send([a1], signal), transport.send([a2], signal)]);
      for (const [outcome] of first) assert.equal(outcome.error, null, outcome.error?.message);
      assert.equal(await server.logins(), 2);
      // A batch cut off mid-upload (a timeout, a stop): its connection is dropped, and its
      // upload folder with the partial copy stays on the server.
      const cut = new AbortController();
      const sending = transport.send(
        [await item(src, "cut.fits", randomBytes(1024 * 1024))],
        cut.signal,
      );
      await waitFor(
        async () => {
          for (const path of await listFiles(dest).catch(() => [])) {
            if (
              path.includes("cut.fits") && (await Deno.stat(join(dest, path))).size > 0
            ) return true;
          }
          return false;
        },
        20_000,
        "a partial upload",
      );
      cut.abort(new Error("stopping"));
      await assert.rejects(sending, /stopping/);
      assert.equal((await leftovers()).length > 0, true, "the cut batch left its upload folder");
      // The next batch into that folder goes over the other connection (no new login).
      const [next] = await transport.send([await item(src, "b.fits", randomBytes(1000))], signal);
      assert.equal(next.error, null, next.error?.message);
      assert.equal(await server.logins(), 2);
      // Before the fix the partial copy stayed until the transport closed (the daemon stopped).
      assert.deepEqual(await leftovers(), []);
    } finally {
      await transport.close();
    }
  }));

Deno.test("ftp: a night folder moved away, replaced by a link or a file, or its base gone while the connection stays: made again, or refused saying what is in the way", () =>
  withVsftpd({}, async ({ server, src, dest }) => {
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    const signal = new AbortController().signal;
    const night = join(dest, "20240315");
    try {
      // Makes the night folder; the connection stays in the pool, knowing it.
      const [first] = await transport.send([await item(src, "a.fits", randomBytes(1000))], signal);
      assert.equal(first.error, null, first.error?.message);
      assert.equal(await server.logins(), 1);

      // The archive's processing moved the night's folder away: it is made again.
      await Deno.rename(night, join(dest, "processed"));
      const moved = await item(src, "b 'moved' $(x).fits", randomBytes(2000));
      const [second] = await transport.send([moved], signal);
      // Before the fix: "cannot make the upload folder ...: check that the login may write in".
      assert.equal(second.error, null, second.error?.message);
      await assertArrived(dest, [moved]);

      // A link in its place, to a folder elsewhere: nothing is written through it.
      await Deno.rename(night, join(dest, "processed 2"));
      const elsewhere = await server.makeRemoteDir();
      await Deno.symlink(elsewhere, night);
      const linked = await item(src, "linked.fits", randomBytes(1000));
      const [link] = await transport.send([linked], signal);
      // Before the fix it arrived in the link's target (a new connection refused it).
      assert.match(
        link.error?.message ?? "",
        /20240315 is a symbolic link .*nothing is written through it/,
      );
      assert.equal(link.error?.kind, "fatal");
      assert.deepEqual([...Deno.readDirSync(elsewhere)], [], "nothing written through the link");
      await Deno.remove(night);

      // A file in the night folder's place: the error says that file is in the way, the file's own.
      await Deno.writeTextFile(night, "in the way");
      const [third] = await transport.send([await item(src, "c.fits", randomBytes(1000))], signal);
      assert.match(
        third.error?.message ?? "",
        /a file named 20240315 is in the way at \S*\/20240315, where a folder must be/,
      );
      assert.equal(third.error?.kind, "retry");
      assert.equal(failureScope(third.error!), "file");
      assert.equal(await Deno.readTextFile(night), "in the way", "left alone");

      // The base folder gone after files arrived there (a share not mounted): not made again.
      transport.deliveredBefore();
      await Deno.rename(dest, `${dest}-unmounted`);
      try {
        const [fourth] = await transport.send(
          [await item(src, "d.fits", randomBytes(1000))],
          signal,
        );
        assert.match(fourth.error?.message ?? "", /the destination folder \S+ is gone/);
        assert.equal(failureScope(fourth.error!), "destination");
      } finally {
        await Deno.rename(`${dest}-unmounted`, dest);
      }
      assert.equal(await server.logins(), 1, "all over the one pooled connection");
    } finally {
      await transport.close();
    }
  }));

Deno.test("ftp: a kept connection that dies in the middle of a batch is a lost connection, never a base folder gone", () =>
  // 300 kB/s: the first upload lasts long enough to open a second connection meanwhile.
  withVsftpd({ maxRateBytes: 300_000 }, async ({ server, src, dest }) => {
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    const signal = new AbortController().signal;
    try {
      const first = transport.send([await item(src, "a.fits", randomBytes(600_000))], signal);
      await waitFor(async () => (await listFiles(dest).catch(() => [])).length > 0, 30_000);
      // A second connection, kept idle: it never made or entered a folder.
      await transport.warmUp();
      assert.equal((await first)[0].error, null);
      assert.equal(await server.logins(), 2);
      transport.deliveredBefore();
      // Each session's first process is killed: what is left of it answers until the next data
      // connection, then says its last words (the connections look open until then).
      await server.killSessions();
      // The connection that made the night folder: cut off at its upload, its upload folder left.
      const [cut] = await transport.send([await item(src, "b.fits", randomBytes(1000))], signal);
      assert.match(cut.error?.message ?? "", /connection lost/);
      // The idle one: it sweeps that upload folder (and dies listing it), then makes its folders.
      const [lost] = await transport.send([await item(src, "c.fits", randomBytes(1000))], signal);
      // Before the fix: "the destination folder ... is gone (a share that is not mounted?)".
      assert.doesNotMatch(lost.error?.message ?? "", /is gone/);
      assert.match(lost.error?.message ?? "", /connection lost/);
      assert.equal(lost.error?.kind, "retry");
      assert.equal(failureScope(lost.error!), "connection");
      // A new login: both arrive whole, nothing is left.
      const again = [
        await item(src, "b.fits", randomBytes(1000)),
        await item(src, "c.fits", randomBytes(2000)),
      ];
      const outcomes = await transport.send(again, signal);
      assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), [null, null]);
      await assertArrived(dest, again);
    } finally {
      await transport.close();
    }
  }));

Deno.test("ftp: a night folder removed while its batch is sent is made again and every file of the batch arrives", () =>
  // 300 kB/s: the first upload lasts long enough to remove the folder meanwhile.
  withVsftpd({ maxRateBytes: 300_000 }, async ({ server, src, dest }) => {
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    const signal = new AbortController().signal;
    const night = join(dest, "20240315");
    try {
      const items = [
        await item(src, "a.fits", randomBytes(600_000)),
        await item(src, "b.fits", randomBytes(1000)),
        await item(src, "c.fits", randomBytes(2000)),
      ];
      const sending = transport.send(items, signal);
      await waitFor(async () => (await listFiles(dest).catch(() => [])).length > 0, 30_000);
      // The archive's clean-up removes the night folder, the batch's upload folder with it.
      await Deno.remove(night, { recursive: true });
      const outcomes = await sending;
      // Before the fix: "upload refused (550 Failed to open file.)", "(553 Could not create file.)".
      assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), [null, null, null]);
      await assertArrived(dest, items);
    } finally {
      await transport.close();
    }
  }));
