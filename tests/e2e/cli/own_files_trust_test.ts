/**
 * The daemon's own places and secrets, as a security trial found them (the daemon runs as root or
 * a service account, another local account can write some folders): a `log_file` that is a link
 * or another file than a log, or in a folder another account can write in or owns; a `state_dir`
 * another account can write in or owns; a token, key or password file another account owns (mode
 * 600 or not). Each refused by `config validate` (exit 2) with its key's line and what to do, and
 * by `run` before it writes anything; through the real CLI.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { fitsFile, headerBytes, imageCards, int16Data } from "../../helpers/fits.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

/** Another account (nobody). */
const OTHER = 65534;

/** What `config validate` says of `config`: its exit code and stderr. */
async function validate(config: string, env: Record<string, string>) {
  const result = await runCli(["-c", config, "config", "validate"], { env });
  return { code: result.code, stderr: result.stderr };
}

Deno.test("log_file: a symbolic link, or a file that is not a log of image-transfer, is refused with its line and left as it was; a log it wrote is taken", async () => {
  await using box = await cliSandbox();
  const passwd = join(box.root, "fake_passwd");
  await Deno.writeTextFile(passwd, "root:x:0:0:root:/root:/bin/bash\n", { mode: 0o644 });
  await Deno.chmod(passwd, 0o644);
  const link = join(box.root, "logs", "link.log");
  await Deno.mkdir(join(box.root, "logs"), { mode: 0o700 });
  await Deno.symlink(passwd, link);
  for (
    const [logFile, said] of [[
      link,
      // Before: "refusing <link> is a symbolic link", which does not read as a sentence.
      `refusing ${link}: it is a symbolic link (to ${passwd})`,
    ], [
      passwd,
      `refusing ${passwd}: it is not a log of image-transfer (its first line is not one of its log lines)`,
    ]]
  ) {
    await box.rewrite({ log_file: logFile });
    const refused = await validate(box.config, box.env);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`${box.config}:\\d+: log_file: refusing `));
    assert.ok(refused.stderr.includes(said), refused.stderr);
    assert.ok(refused.stderr.includes("give the path of a new file"), refused.stderr);
    const run = await runCli(["-c", box.config, "run", "--once"], { env: box.env });
    assert.equal(run.code, 2, run.stderr);
    assert.ok(run.stderr.includes(said), run.stderr);
    assert.equal(await Deno.readTextFile(passwd), "root:x:0:0:root:/root:/bin/bash\n");
    assert.equal((await Deno.stat(passwd)).mode! & 0o777, 0o644, "not made private");
  }
  // A log this program wrote (text, or JSON lines) goes on being appended to.
  const own = join(box.root, "logs", "own.log");
  await Deno.writeTextFile(own, "2026-11-30 20:43:45.969 INFO    [daemon] Started\n");
  await box.rewrite({ log_file: own });
  assert.equal((await validate(box.config, box.env)).code, 0);
  await Deno.writeTextFile(own, '{"time":"2026-11-30T20:43:45.969Z","level":"info"}\n');
  assert.equal((await validate(box.config, box.env)).code, 0);
});

Deno.test("the old Python tool's log at the default log_file path is appended to (its lines kept first, its rotated files left); another file or a folder there is refused as the default path", async () => {
  await using box = await cliSandbox();
  const logs = join(box.env.HOME, "logs");
  await Deno.mkdir(logs, { mode: 0o700 });
  const log = join(logs, "image_transfer.log");
  const old = "2026-11-30 22:01:13,512 - image_transfer - INFO - Successfully transferred " +
    "/data/m31.fits to obs@nas:/archive/20261130/m31.fits\n" +
    "2026-11-30 22:01:14,002 - image_transfer - ERROR - Failed to transfer /data/m32.fits\n";
  await Deno.writeTextFile(log, old);
  await Deno.writeTextFile(`${log}.1`, "2026-11-29 21:00:00,000 - image_transfer - INFO - x\n");
  // No log_file in the config: the old tool's config, loaded unchanged.
  const text = await Deno.readTextFile(box.config);
  await Deno.writeTextFile(
    box.config,
    text.split("\n").filter((line) => !line.startsWith("log_file:")).join("\n"),
  );
  const ok = await validate(box.config, box.env);
  assert.equal(ok.code, 0, ok.stderr);
  const doctor = await runCli(["-c", box.config, "doctor"], { env: box.env });
  assert.ok(!doctor.stderr.includes("log_file"), doctor.stderr);
  await Deno.writeFile(
    join(box.watch, "m33.fits"),
    fitsFile(headerBytes(imageCards(2, 2)), int16Data(2, 2, () => 7)),
  );
  const run = await runCli(["-c", box.config, "run", "--once"], { env: box.env });
  assert.equal(run.code, 0, run.stderr);
  const after = await Deno.readTextFile(log);
  assert.ok(after.startsWith(old), after);
  assert.match(after.slice(old.length), /^\d{4}-\d\d-\d\d [\d:.]+ INFO +\[/);
  assert.ok(after.slice(old.length).includes("Successfully transferred"), after);
  assert.equal(
    await Deno.readTextFile(`${log}.1`),
    "2026-11-29 21:00:00,000 - image_transfer - INFO - x\n",
  );
  // Another file at the default path: refused, said to be the default path (not a key written).
  await Deno.writeTextFile(log, "root:x:0:0:root:/root:/bin/bash\n");
  const refused = await validate(box.config, box.env);
  assert.equal(refused.code, 2, refused.stderr);
  assert.ok(
    refused.stderr.includes(
      `${box.config}: log_file (not set in the config: its default path; set log_file to ` +
        `choose another): refusing ${log}: it is not a log of image-transfer`,
    ),
    refused.stderr,
  );
  assert.equal(await Deno.readTextFile(log), "root:x:0:0:root:/root:/bin/bash\n");
  // A folder at the default path: said of the default path too.
  await Deno.remove(log);
  await Deno.mkdir(log);
  const folder = await validate(box.config, box.env);
  assert.equal(folder.code, 2, folder.stderr);
  assert.ok(
    folder.stderr.includes(
      `${box.config}: log_file (not set in the config: its default path; set log_file to ` +
        `choose another): ${log} is a folder`,
    ),
    folder.stderr,
  );
});

Deno.test("log_file in a folder another account can write in or owns, and a state_dir so, are refused with their lines and the chmod or chown", async () => {
  await using box = await cliSandbox();
  const uid = Deno.uid()!;
  const logs = join(box.root, "logs");
  await Deno.mkdir(logs, { mode: 0o700 });
  await Deno.mkdir(box.stateDir, { mode: 0o700 });
  await Deno.chmod(logs, 0o1777); // The sticky bit: others may still make the log's name first.
  await Deno.chmod(box.stateDir, 0o777);
  const open = await validate(box.config, box.env);
  assert.equal(open.code, 2, open.stderr);
  for (
    const said of [
      `log_file: refusing the folder ${logs} of ${box.logFile}: it is writable by group and ` +
      `others (mode 1777)`,
      `chmod go-w ${logs}`,
      `state_dir: refusing ${box.stateDir}: it is writable by group and others (mode 0777)`,
      `chmod go-w ${box.stateDir}`,
    ]
  ) assert.ok(open.stderr.includes(said), open.stderr);
  assert.match(open.stderr, new RegExp(`${box.config}:\\d+: state_dir: refusing`));
  const run = await runCli(["-c", box.config, "run", "--once"], { env: box.env });
  assert.equal(run.code, 2, run.stderr);
  await assert.rejects(Deno.stat(box.logFile), Deno.errors.NotFound);

  await Deno.chmod(logs, 0o700);
  await Deno.chmod(box.stateDir, 0o700);
  await Deno.chown(logs, OTHER, OTHER);
  await Deno.chown(box.stateDir, OTHER, OTHER);
  const theirs = await validate(box.config, box.env);
  assert.equal(theirs.code, 2, theirs.stderr);
  for (
    const said of [
      `log_file: refusing the folder ${logs} of ${box.logFile}: it belongs to user id ${OTHER}, ` +
      `not to root or to the account the daemon runs as (user id ${uid})`,
      `sudo chown ${uid} ${logs}`,
      `state_dir: refusing ${box.stateDir}: it belongs to user id ${OTHER}`,
      `sudo chown ${uid} ${box.stateDir}`,
    ]
  ) assert.ok(theirs.stderr.includes(said), theirs.stderr);

  await Deno.chown(logs, uid, uid);
  await Deno.chown(box.stateDir, uid, uid);
  const ok = await validate(box.config, box.env);
  assert.equal(ok.code, 0, ok.stderr);
});

Deno.test("a status_token_file, status_tls_key, ssh_identity_file or ftp_password_file another account owns is refused though its mode is 600", async () => {
  await using box = await cliSandbox();
  const uid = Deno.uid()!;
  const secret = async (name: string, text: string) => {
    const path = join(box.root, name);
    await Deno.writeTextFile(path, text, { mode: 0o600 });
    await Deno.chown(path, OTHER, OTHER);
    return path;
  };
  const token = await secret("token", "0123456789abcdef0123456789abcdef\n");
  const key = await secret(
    "id_ed25519",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
  );
  const password = await secret("ftp password", "secret\n");
  const tlsKey = await secret(
    "tls.key",
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
  );
  const cert = join(box.root, "tls.crt");
  await Deno.writeTextFile(cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  await box.rewrite({
    status_listen: "127.0.0.1:19301",
    status_token_file: token,
    jobs: [
      {
        name: "south",
        transfer_method: "scp",
        remote_host: "example.invalid",
        ssh_identity_file: key,
      },
      {
        name: "north",
        transfer_method: "ftp",
        remote_host: "example.invalid",
        remote_user: "obs",
        ftp_password_file: password,
      },
    ],
  });
  const refused = await validate(box.config, box.env);
  assert.equal(refused.code, 2, refused.stderr);
  const owned = `belongs to user id ${OTHER}, not to root or to the account the daemon runs as ` +
    `(user id ${uid})`;
  for (
    const said of [
      `status_token_file: refusing ${token}: it ${owned}`,
      `ssh_identity_file of job south: refusing ${key}: it ${owned}`,
      `ftp_password_file of job north: refusing ${password}: it ${owned}`,
      `sudo chown ${uid} '${password}'`,
    ]
  ) assert.ok(refused.stderr.includes(said), refused.stderr);
  assert.match(refused.stderr, new RegExp(`${box.config}:\\d+: status_token_file: refusing`));

  // The TLS key alone (the token file the daemon's own again).
  await Deno.chown(token, uid, uid);
  await Deno.chown(key, uid, uid);
  await Deno.chown(password, uid, uid);
  await box.rewrite({
    status_listen: "127.0.0.1:19301",
    status_tls_cert: cert,
    status_tls_key: tlsKey,
  });
  const tls = await validate(box.config, box.env);
  assert.equal(tls.code, 2, tls.stderr);
  assert.ok(tls.stderr.includes(`status_tls_key: refusing ${tlsKey}: it ${owned}`), tls.stderr);
  await Deno.chown(tlsKey, uid, uid);
  const ok = await validate(box.config, box.env);
  assert.equal(ok.code, 0, ok.stderr);
});
