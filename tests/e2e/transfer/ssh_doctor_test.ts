/**
 * `image-transfer doctor` through the real CLI, against a real OpenSSH server on loopback; a
 * doctor stopped by Ctrl-C leaves no shared connection behind.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { createTransport } from "../../../src/transfer/transport.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { exists, listFiles, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { methodJobsConfig, startSshd, withStoppedWhileAsking } from "../../helpers/sshd.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import { makeItem } from "../../helpers/transports.ts";

Deno.test("doctor checks programs, login, destination and free space per job", async (t) => {
  const sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "itx-doctor-test-" });
  try {
    const dst = await sshd.makeRemoteDir();
    const emptyKnownHosts = join(sshd.dir, "empty_known_hosts");
    await Deno.writeTextFile(emptyKnownHosts, "");
    const readOnly = await Deno.makeTempDir({ prefix: "itx-doctor-ro-" });
    await Deno.chmod(readOnly, 0o755); // owned by root: the login user cannot write
    const ssh = {
      watch_path: dir,
      remote_host: "127.0.0.1",
      remote_user: sshd.user,
      ssh_port: sshd.port,
      ssh_identity_file: sshd.identityFile,
      ssh_options: sshd.sshOptions,
    };
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      stringify({
        jobs: [
          {
            ...ssh,
            name: "good",
            transfer_method: "rsync",
            remote_base_path: `${dst}/new/base`,
            verify_transfer: "checksum",
          },
          {
            ...ssh,
            name: "unknown-key",
            transfer_method: "scp",
            remote_base_path: dst,
            ssh_options: [
              `UserKnownHostsFile=${emptyKnownHosts}`,
              "GlobalKnownHostsFile=/dev/null",
            ],
          },
          { ...ssh, name: "read-only", transfer_method: "scp", remote_base_path: readOnly },
          // Keeps more free than any disk has: doctor judges the space as the job would.
          {
            ...ssh,
            name: "keeps-all",
            transfer_method: "scp",
            // A folder of its own: two jobs never share one (they would replace each other's files).
            remote_base_path: `${dst}/keeps-all`,
            min_free_space: "99.9%",
          },
          {
            name: "local",
            watch_path: dir,
            transfer_method: "local",
            // Hidden: the watch of this folder never enters it.
            remote_base_path: join(dir, ".local-dst"),
          },
        ],
      }),
    );

    await t.step(
      "one good job: exit 0, every check ok; a missing folder is said, not made",
      async () => {
        const result = await runCli(["doctor", "-c", config, "--job", "good"]);
        assert.equal(result.code, 0, result.stderr + result.stdout);
        assert.match(result.stdout, /^job good \(rsync -> itx-test@127\.0\.0\.1:/m);
        assert.match(result.stdout, /ok {4}ssh: OpenSSH_/);
        assert.match(result.stdout, /ok {4}rsync: rsync\s+version/);
        assert.match(result.stdout, /ok {4}login: itx-test@127\.0\.0\.1 without a password prompt/);
        // Not made: a share that is not mounted would get it on the disk below.
        assert.match(
          result.stdout,
          /WARN {2}destination folder: .*\/new\/base does not exist: the first transfer makes it, in itx-test@127\.0\.0\.1:\/.*, it is a share that is not mounted/,
        );
        assert.match(
          result.stdout,
          new RegExp(
            `ok {4}destination writable: created and removed a test folder in .*:${dst}$`,
            "m",
          ),
        );
        assert.match(result.stdout, /ok {4}free space: [\d.]+ [GM]iB free/);
        assert.match(result.stdout, /ok {4}remote SHA-256: (openssl dgst|sha256sum|shasum)/);
        assert.match(result.stdout, /ok {4}remote rsync: rsync\s+version/);
        assert.doesNotMatch(result.stdout, /FAIL/);
        assert.deepEqual([...Deno.readDirSync(dst)], [], "nothing made, the test folder removed");

        await Deno.mkdir(`${dst}/new/base`, { recursive: true });
        await Deno.chown(`${dst}/new`, sshd.uid, sshd.gid);
        await Deno.chown(`${dst}/new/base`, sshd.uid, sshd.gid);
        const again = await runCli(["doctor", "-c", config, "--job", "good"]);
        assert.equal(again.code, 0, again.stderr + again.stdout);
        assert.match(again.stdout, /ok {4}destination folder: .*\/new\/base exists/);
        assert.match(again.stdout, /ok {4}destination writable: .*\/new\/base$/m);
        assert.deepEqual(
          [...Deno.readDirSync(`${dst}/new/base`)],
          [],
          "the test folder is removed",
        );
      },
    );

    await t.step("all jobs: failures say what to fix, exit 1", async () => {
      const result = await runCli(["doctor", "-c", config]);
      assert.equal(result.code, 1, result.stdout);
      assert.match(
        result.stdout,
        /FAIL {2}login: .*host key of 127\.0\.0\.1 is not known: run "ssh/,
      );
      assert.match(
        result.stdout,
        /job read-only[\s\S]*FAIL {2}destination writable: .*make the folder writable/,
      );
      assert.match(result.stdout, /job local \(local -> [\s\S]*ok {4}destination writable/);
      assert.match(result.stderr, /^error: Cannot confirm every job will work/m);
    });

    await t.step("min_free_space is judged at an SSH destination as at a local one", async () => {
      const result = await runCli(["doctor", "-c", config, "--job", "keeps-all"]);
      assert.equal(result.code, 1, result.stdout);
      assert.match(
        result.stdout,
        /FAIL {2}free space: [\d.]+ [GMT]iB free at .*, less than min_free_space \([\d.]+ [GMT]iB\): nothing would be sent there/,
      );
    });

    await t.step("an unknown job name is a usage error", async () => {
      const result = await runCli(["doctor", "-c", config, "--job", "nope"]);
      assert.equal(result.code, 2);
      assert.match(
        result.stderr,
        /no such job .*jobs: good, unknown-key, read-only, keeps-all, local/,
      );
    });
    await Deno.remove(readOnly, { recursive: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await sshd.stop();
  }
});

Deno.test("doctor sends a test file with the job's rsync_options: one rsync refuses fails, and nothing is left", async () => {
  const sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "itx-doctor-options-" });
  try {
    const dst = await sshd.makeRemoteDir();
    // A hostile folder name: the test file goes there by rsync and is removed by a script.
    const folderOf = (name: string) => `${name} 'q' $(touch x) -r`;
    const job = (name: string, rsync_options: string[]) => ({
      name,
      watch_path: dir,
      transfer_method: "rsync",
      remote_host: "127.0.0.1",
      remote_user: sshd.user,
      ssh_port: sshd.port,
      ssh_identity_file: sshd.identityFile,
      ssh_options: sshd.sshOptions,
      remote_base_path: `${dst}/${folderOf(name)}`,
      rsync_options,
    });
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      stringify({
        jobs: [
          job("kind", ["--no-whole-file", "--timeout=30"]),
          job("typo", ["--no-wholefile"]),
          job("not-yet", ["--no-whole-file"]),
        ],
      }),
    );
    for (const name of ["kind", "typo"]) {
      await Deno.mkdir(`${dst}/${folderOf(name)}`);
      await Deno.chown(`${dst}/${folderOf(name)}`, sshd.uid, sshd.gid);
    }

    const kind = await runCli(["doctor", "-c", config, "--job", "kind"]);
    assert.equal(kind.code, 0, kind.stderr + kind.stdout);
    assert.match(
      kind.stdout,
      /ok {4}rsync options: sent a test file with --no-whole-file --timeout=30$/m,
    );

    const typo = await runCli(["doctor", "-c", config, "--job", "typo"]);
    assert.equal(typo.code, 1, typo.stderr + typo.stdout);
    assert.match(
      typo.stdout,
      /FAIL {2}rsync options: Cannot send a test file with --no-wholefile: an option is not understood: .*; rsync said: --no-wholefile: unknown option$/m,
    );

    // Not tried where the folder is missing: the test would make it.
    const notYet = await runCli(["doctor", "-c", config, "--job", "not-yet"]);
    assert.equal(notYet.code, 0, notYet.stderr + notYet.stdout);
    assert.match(notYet.stdout, /WARN {2}rsync options: not tried: the destination folder/);

    assert.deepEqual(await listFiles(dst), [], "the test files are removed, no folder is made");
    assert.deepEqual(
      [...Deno.readDirSync(dst)].map((e) => e.name).sort(),
      ["kind", "typo"].map(folderOf),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
    await sshd.stop();
  }
});

/** What a login session on the openssl-only server may run (no sha256sum, no shasum). */
const SERVER_TOOLS = [
  "sh",
  "mkdir",
  "rmdir",
  "rm",
  "mv",
  "stat",
  "mktemp",
  "cat",
  "tr",
  "sync",
  "chmod",
  "df",
  "awk",
  "xargs",
  "head",
  "rsync",
];

Deno.test("a server whose only SHA-256 tool is openssl passes doctor and receives verified files; rsync's are not hashed again", async () => {
  const bin = await Deno.makeTempDir({ prefix: "itx-openssl-only-" });
  await Deno.chmod(bin, 0o755);
  for (const tool of SERVER_TOOLS) {
    await Deno.symlink(
      await Deno.realPath(`/usr/bin/${tool}`).catch(() => `/bin/${tool}`),
      join(bin, tool),
    );
  }
  // openssl, counting the files it hashes (its arguments after `-r`).
  const log = join(bin, "hashed");
  await Deno.writeTextFile(log, "");
  await Deno.chmod(log, 0o666);
  await Deno.writeTextFile(
    join(bin, "openssl"),
    `#!/bin/sh\necho "$(($# - 3))" >>'${log}'\nexec /usr/bin/openssl "$@"\n`,
  );
  await Deno.chmod(join(bin, "openssl"), 0o755);
  const filesHashed = async () => {
    const counts = (await Deno.readTextFile(log)).split("\n").filter((line) => line !== "");
    await Deno.writeTextFile(log, "");
    return counts.reduce((sum, count) => sum + Number(count), 0);
  };
  const sshd = await startSshd({ sessionEnv: { PATH: bin } });
  const dir = await Deno.makeTempDir({ prefix: "itx-doctor-openssl-" });
  try {
    for (const method of ["scp", "rsync"] as const) {
      const dst = await sshd.makeRemoteDir();
      const job = sshd.job({
        transfer_method: method,
        remote_base_path: dst,
        verify_transfer: "checksum",
        watch_path: dir,
      });
      const config = join(dir, `${method}.yaml`);
      await Deno.writeTextFile(
        config,
        stringify({
          jobs: [{
            ...sshd.configKeys(),
            name: method,
            watch_path: dir,
            transfer_method: method,
            remote_base_path: dst,
            verify_transfer: "checksum",
          }],
        }),
      );
      const result = await runCli(["doctor", "-c", config]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /ok {4}remote SHA-256: openssl dgst -sha256 -r/);

      await filesHashed();
      const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
      const transport = createTransport(job, runtime);
      try {
        const src = join(dir, `src-${method}`);
        const items = [
          await makeItem(src, "20240501/a.fits", randomBytes(70_000)),
          // Over the size a batch sent in one call may have: scp or rsync carries them.
          await makeItem(src, "20240501/b c.fits", randomBytes(9 << 20)),
        ];
        const outcomes = await transport.send(items, new AbortController().signal);
        assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), [null, null]);
        assert.deepEqual(await listFiles(dst), ["20240501/a.fits", "20240501/b c.fits"]);
        for (const item of items) {
          assert.equal(
            await sha256OfFile(join(dst, ...item.destination.split("/"))),
            await sha256OfFile(item.source),
          );
        }
        // scp's copies are hashed on the server (one process for the folder's two copies);
        // rsync checked its own with its whole-file checksum, and exited 0.
        assert.equal(await filesHashed(), method === "scp" ? 2 : 0, method);
      } finally {
        await transport.close();
        await Deno.remove(runtime, { recursive: true });
      }
    }
  } finally {
    await sshd.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("a login shell that prints text: doctor says so, scp and rsync fail for good saying what to change, and files go once it is quiet", async () => {
  // The login's home for this server only (SetEnv HOME): bash reads its ~/.bashrc for commands.
  const home = await Deno.makeTempDir({ prefix: "itx-noisy-home-" });
  const bashrc = join(home, ".bashrc");
  await Deno.writeTextFile(bashrc, 'echo "Welcome to the archive server!"\n');
  // An sftp-server program (Debian's default), which sshd starts through the login shell.
  const sshd = await startSshd({
    sessionEnv: { HOME: home },
    sftpServer: "/usr/lib/openssh/sftp-server",
  });
  await Deno.chown(home, sshd.uid, sshd.gid);
  const dir = await Deno.makeTempDir({ prefix: "itx-doctor-noisy-" });
  try {
    const dst = await sshd.makeRemoteDir();
    const config = join(dir, "config.yaml");
    await methodJobsConfig(config, sshd, dir, dst, ["rsync", "scp"]);
    const shellLine = (verdict: string) =>
      new RegExp(
        `${verdict} {2}login shell: the login shell of itx-test@127\\.0\\.0\\.1 prints text for non-interactive sessions .* true" prints nothing \\(it printed: "Welcome to the archive server!"\\)$`,
        "m",
      );
    const rsync = await runCli(["doctor", "-c", config, "--job", "rsync"]);
    assert.equal(rsync.code, 1, rsync.stderr + rsync.stdout);
    assert.match(rsync.stdout, shellLine("FAIL"));
    const scp = await runCli(["doctor", "-c", config, "--job", "scp"]);
    assert.equal(scp.code, 0, scp.stderr + scp.stdout);
    assert.match(scp.stdout, shellLine("WARN"));

    const send = async (method: "scp" | "rsync", name: string) => {
      const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
      const transport = createTransport(
        sshd.job({ transfer_method: method, remote_base_path: `${dst}/${method}` }),
        runtime,
      );
      try {
        // Over the size a batch sent in one call may have (its scripts skip such text).
        const item = await makeItem(join(dir, "src"), `20240501/${name}`, randomBytes(9 << 20));
        return (await transport.send([item], new AbortController().signal))[0].error ?? null;
      } finally {
        await transport.close();
        await Deno.remove(runtime, { recursive: true });
      }
    };
    for (const method of ["rsync", "scp"] as const) {
      const error = await send(method, "noisy 'a'.fits");
      assert.ok(error !== null, method);
      assert.equal(error.kind, "fatal", method);
      assert.match(
        error.message,
        /the login shell of itx-test@127\.0\.0\.1 prints text .*\[\[ \$- == \*i\* \]\] \|\| return/,
        method,
      );
      assert.doesNotMatch(error.message, /check that the host is up/, method);
      assert.deepEqual(await listFiles(`${dst}/${method}`).catch(() => []), [], method);
    }

    await Deno.writeTextFile(
      bashrc,
      '[[ $- == *i* ]] || return\necho "Welcome to the archive server!"\n',
    );
    const quiet = await runCli(["doctor", "-c", config]);
    assert.equal(quiet.code, 0, quiet.stderr + quiet.stdout);
    assert.doesNotMatch(quiet.stdout, /login shell/);
    for (const method of ["rsync", "scp"] as const) {
      assert.equal(await send(method, "quiet.fits"), null, method);
      assert.deepEqual(await listFiles(`${dst}/${method}`), ["20240501/quiet.fits"], method);
    }
  } finally {
    await sshd.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("rsync off the PATH of the server's logins: doctor and the transfers say to give --rsync-path, and with it doctor passes and files arrive", async () => {
  // The server's programs, but rsync, on its PATH; rsync itself stays in /usr/bin.
  const bin = await Deno.makeTempDir({ prefix: "itx-no-rsync-" });
  await Deno.chmod(bin, 0o755);
  for (const entry of Deno.readDirSync("/usr/bin")) {
    if (entry.name !== "rsync") await Deno.symlink(`/usr/bin/${entry.name}`, join(bin, entry.name));
  }
  const sshd = await startSshd({ sessionEnv: { PATH: bin } });
  const dir = await Deno.makeTempDir({ prefix: "itx-doctor-rsync-path-" });
  try {
    const dst = await sshd.makeRemoteDir();
    const config = join(dir, "config.yaml");
    const job = (name: string, rsync_options: string[]) => ({
      ...sshd.configKeys(),
      name,
      watch_path: dir,
      transfer_method: "rsync",
      remote_base_path: `${dst}/${name}`,
      rsync_options,
    });
    await Deno.writeTextFile(
      config,
      stringify({
        jobs: [job("plain", []), job("named", ["--rsync-path=/usr/bin/rsync"])],
      }),
    );
    for (const name of ["plain", "named"]) {
      await Deno.mkdir(`${dst}/${name}`);
      await Deno.chown(`${dst}/${name}`, sshd.uid, sshd.gid);
    }
    const plain = await runCli(["doctor", "-c", config, "--job", "plain"]);
    assert.equal(plain.code, 1, plain.stderr + plain.stdout);
    assert.match(
      plain.stdout,
      /FAIL {2}remote rsync: rsync not found on the PATH .*rsync_options: \["--rsync-path=\/path\/to\/rsync"\]/,
    );
    // Before the fix: FAIL remote rsync, though the test file went with the named rsync.
    const named = await runCli(["doctor", "-c", config, "--job", "named"]);
    assert.equal(named.code, 0, named.stderr + named.stdout);
    assert.match(named.stdout, /skip {2}remote rsync: not on the PATH; rsync_options names it/);
    assert.match(named.stdout, /ok {4}rsync options: sent a test file with --rsync-path=/);

    for (const [name, options] of [["plain", []], ["named", ["--rsync-path=/usr/bin/rsync"]]]) {
      const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
      const transport = createTransport(
        sshd.job({
          transfer_method: "rsync",
          remote_base_path: `${dst}/${name}`,
          rsync_options: options as string[],
          // Not in one call (its script needs no rsync): rsync carries the file.
          bandwidth_limit: "100MB/s",
        }),
        runtime,
      );
      try {
        const item = await makeItem(join(dir, "src"), "20240501/a.fits", randomBytes(5000));
        const [outcome] = await transport.send([item], new AbortController().signal);
        if (name === "plain") {
          assert.equal(outcome.error?.kind, "fatal");
          assert.match(
            outcome.error?.message ?? "",
            /rsync is not installed on 127\.0\.0\.1 \(or not on the PATH of its logins for commands\): install it there, give its path with rsync_options: \["--rsync-path=\/path\/to\/rsync"\], or use transfer_method: scp/,
          );
        } else {
          assert.equal(outcome.error, null, outcome.error?.message);
          assert.deepEqual(await listFiles(`${dst}/${name}`), ["20240501/a.fits"]);
        }
      } finally {
        await transport.close();
        await Deno.remove(runtime, { recursive: true });
      }
    }
  } finally {
    await sshd.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("a remote_base_path that is a file: doctor fails its folder check saying so, and the transfers name the file in the way", async () => {
  const sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "itx-doctor-base-file-" });
  try {
    const dst = await sshd.makeRemoteDir();
    const base = `${dst}/-base 'x'`;
    await Deno.writeTextFile(base, "a file");
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      stringify({
        ...sshd.configKeys(),
        watch_path: dir,
        transfer_method: "rsync",
        remote_base_path: base,
      }),
    );
    const result = await runCli(["doctor", "-c", config]);
    assert.equal(result.code, 1, result.stderr + result.stdout);
    // Before the fix: WARN 'does not exist: the first transfer makes it', then 'make the folder
    // writable'.
    assert.match(
      result.stdout,
      /FAIL {2}destination folder: \S+ 'x' is a file, not a folder: rename or remove it there, or change remote_base_path$/m,
    );
    assert.doesNotMatch(result.stdout, /does not exist|destination writable/);
    assert.match(result.stdout, /ok {4}remote rsync: rsync\s+version/);

    for (const method of ["scp", "rsync"] as const) {
      // In one call, and by the upload program (a bandwidth limit).
      for (const bandwidth_limit of ["", "100MB/s"]) {
        const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
        const transport = createTransport(
          sshd.job({ transfer_method: method, remote_base_path: base, bandwidth_limit }),
          runtime,
        );
        try {
          const item = await makeItem(join(dir, "src"), "20240501/a.fits", randomBytes(5000));
          const [outcome] = await transport.send([item], new AbortController().signal);
          // Before the fix: 'the command failed (mkdir: cannot create directory ...: File exists)'.
          assert.match(
            outcome.error?.message ?? "",
            /cannot create the folder: a file named -base 'x' is in the way at \S+ 'x', where a folder must be: rename or remove it there/,
            `${method} ${bandwidth_limit}`,
          );
        } finally {
          await transport.close();
          await Deno.remove(runtime, { recursive: true });
        }
      }
    }
    assert.equal(await Deno.readTextFile(base), "a file", "left alone");
  } finally {
    await sshd.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RequestTTY force in the user's ssh config: the daemon's sessions get no terminal, so doctor passes and scp and rsync deliver", async () => {
  const sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "itx-doctor-tty-" });
  try {
    // The user's ssh config, as ssh reads it (-F: this test's own, not the machine's ~/.ssh/config).
    const userConfig = join(dir, "ssh_config");
    await Deno.writeTextFile(userConfig, "Host *\n    RequestTTY force\n");
    const bin = join(dir, "bin");
    await Deno.mkdir(bin);
    await Deno.writeTextFile(
      join(bin, "ssh"),
      `#!/bin/sh\nexec /usr/bin/ssh -F '${userConfig}' "$@"\n`,
    );
    await Deno.chmod(join(bin, "ssh"), 0o755);
    const env = { HOME: dir, PATH: `${bin}:${Deno.env.get("PATH")}` };
    const dst = await sshd.makeRemoteDir();
    const job = (method: "scp" | "rsync") => ({
      ...sshd.configKeys(),
      name: method,
      watch_path: join(dir, method),
      transfer_method: method,
      remote_base_path: `${dst}/${method}`,
      stability_window_seconds: 0.2,
      night_timezone: "UTC",
    });
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      stringify({
        state_dir: join(dir, "state"),
        status_listen: "",
        jobs: [job("scp"), job("rsync")],
      }),
    );
    // A small file goes in one call with tar; one over 8 MiB with scp or rsync itself.
    const files = { "small.fits": randomBytes(3000), "big.fits": randomBytes(9 << 20) };
    for (const method of ["scp", "rsync"] as const) {
      await Deno.mkdir(join(dir, method));
      const doctor = await runCli(["doctor", "-c", config, "--job", method], { env });
      assert.equal(doctor.code, 0, doctor.stderr + doctor.stdout);
      assert.match(doctor.stdout, /ok {4}login: /);
    }
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await daemon.waitForOutput("Watching");
      for (const method of ["scp", "rsync"] as const) {
        for (const [name, bytes] of Object.entries(files)) {
          await Deno.writeFile(join(dir, method, name), bytes);
        }
      }
      for (const method of ["scp", "rsync"] as const) {
        for (const name of Object.keys(files)) {
          await daemon.waitForOutput(`Successfully transferred ${join(dir, method, name)} ->`);
        }
      }
    } finally {
      await daemon.stop();
    }
    for (const method of ["scp", "rsync"] as const) {
      const night = (await listFiles(join(dst, method)))[0].split("/")[0];
      for (const name of Object.keys(files)) {
        assert.equal(
          await sha256OfFile(join(dst, method, night, name)),
          await sha256OfFile(join(dir, method, name)),
        );
      }
    }
  } finally {
    await sshd.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("doctor stopped by Ctrl-C, pressed again while it asks the SSH master to exit, ends its shared connection: no master outlives it", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-doctor-stop-" });
  await Deno.chmod(root, 0o755);
  // The server's df (the remote checks) waits while `df hold` is there: doctor is stopped then.
  const dfAsked = join(root, "df asked");
  const dfHold = join(root, "df hold");
  const remoteTools = await standInPrograms(join(root, "remote"), {
    df: `: >'${dfAsked}'; while [ -e '${dfHold}' ]; do sleep 0.1; done; exec /usr/bin/df "$@"\n`,
  });
  await Deno.chmod(root, 0o777); // The login user writes `df asked`.
  // The first request to exit waits for the second Ctrl-C, which ends it (see the daemon's test).
  const exitAsked = join(root, "exit asked");
  const exitHold = join(root, "exit hold");
  const tools = await standInPrograms(join(root, "local"), {
    ssh: `case " $* " in *" -O exit "*) [ -e '${exitAsked}' ] || { : >'${exitAsked}'
  while [ -e '${exitHold}' ]; do sleep 0.1; done; kill -INT $$; } ;; esac
exec /usr/bin/ssh "$@"
`,
  });
  await Deno.writeTextFile(dfHold, "");
  await Deno.writeTextFile(exitHold, "");
  try {
    await withStoppedWhileAsking(remoteTools, async ({ box, tmp, theMaster, masterGone }) => {
      const doctor = startCli(["doctor", "-c", box.config], {
        env: { ...box.env, TMPDIR: tmp, PATH: `${tools}:${Deno.env.get("PATH") ?? ""}` },
        ownProcessGroup: true,
      });
      const group = -doctor.process.pid;
      let status: Deno.CommandStatus;
      try {
        await waitFor(() => exists(dfAsked), 60_000, "the remote checks under way");
        await theMaster("doctor");
        Deno.kill(group, "SIGINT");
        await waitFor(() => exists(exitAsked), 60_000, "the master asked to exit");
        Deno.kill(group, "SIGINT");
        await Deno.remove(exitHold);
      } finally {
        await Deno.remove(dfHold).catch(() => {});
        status = await doctor.stop("SIGTERM");
      }
      assert.equal(status.code, 1, doctor.stderr());
      assert.match(doctor.stderr(), /error: doctor was stopped \(SIGINT\) before its checks ended/);
      assert.doesNotMatch(doctor.stdout(), /FAIL/, "what the stop cut short is no finding");
      await masterGone("doctor");
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
