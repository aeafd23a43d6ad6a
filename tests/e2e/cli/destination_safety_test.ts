/**
 * Destinations that would lose or endlessly repeat copies are refused before
 * anything is sent (`config validate` and `run`, through the CLI): two jobs
 * sending into one folder, a local destination inside the watch folder the
 * watch would enter, a watch folder that is a night folder of its
 * destination, local jobs sending into each other's watch folders round to
 * the first. What stays apart is accepted, and delivers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CliResult, runCli, startCli } from "../../helpers/cli.ts";
import { existsSync, listFiles, randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";
import { isMounted, mountBindfs, mountBindfsProcess, unmountBindfs } from "../../helpers/bindfs.ts";
import { withBindMount, withTmpfs } from "../../helpers/tmpfs.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";

async function withRoot(fn: (root: string, env: Record<string, string>) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "itx-dest-safety-" });
  try {
    await Deno.mkdir(join(root, "home"));
    await fn(root, { HOME: join(root, "home") });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** Daemon-wide keys of a config in `root`. */
function daemonKeys(root: string) {
  return { state_dir: join(root, "state"), log_file: "", night_timezone: "UTC" };
}

/**
 * A `local` job in `root` from `root/watch` (made) to `base`, with `values`;
 * returns the config file and the watch folder.
 */
async function localJob(
  root: string,
  base: string,
  values: Record<string, unknown> = {},
): Promise<{ config: string; watch: string }> {
  const config = join(root, "config.yaml");
  const watch = join(root, "watch");
  await Deno.mkdir(watch);
  await writeConfig(config, {
    ...daemonKeys(root),
    transfer_method: "local",
    watch_path: watch,
    remote_base_path: base,
    ...values,
  });
  return { config, watch };
}

/**
 * A {@linkcode localJob} to `root/share`, the mount point of a share served from `root/server`
 * (made; nothing is mounted).
 */
async function shareJob(root: string, values: Record<string, unknown> = {}) {
  const server = join(root, "server");
  const base = join(root, "share");
  await Deno.mkdir(server);
  return { server, base, ...await localJob(root, base, values) };
}

/** `run --once -c config`, which must exit with `code`. */
async function runOnce(
  config: string,
  env: Record<string, string>,
  code: number,
): Promise<CliResult> {
  const result = await runCli(["run", "--once", "-c", config], { env });
  assert.equal(result.code, code, result.stderr);
  return result;
}

Deno.test("two jobs sending into one folder are refused, naming both; folders of their own are accepted", async () => {
  await withRoot(async (root, env) => {
    const config = join(root, "config.yaml");
    for (const camera of ["north", "south"]) {
      await Deno.mkdir(join(root, camera));
      // The same name from both cameras: one would replace the other at the destination.
      await Deno.writeFile(join(root, camera, "img0001.fits"), randomBytes(1000));
    }
    const dest = join(root, "dest");
    await writeConfig(config, {
      ...daemonKeys(root),
      transfer_method: "local",
      remote_base_path: dest,
      jobs: [
        { name: "north", watch_path: join(root, "north") },
        // The same folder written another way.
        { name: "south", watch_path: join(root, "south"), remote_base_path: `${dest}/./` },
      ],
    });
    for (const args of [["config", "validate"], ["run", "--once"]]) {
      const result = await runCli([...args, "-c", config], { env });
      assert.equal(result.code, 2, result.stderr);
      assert.match(
        result.stderr,
        /config\.yaml:\d+: remote_base_path of job south: job north sends into .* too/,
      );
      // In north's own words: south's are on the line named.
      assert.ok(result.stderr.includes(`job north sends into ${dest} too`), result.stderr);
      assert.match(result.stderr, /give each job a folder of its own/);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    }
    assert.equal(existsSync(dest), false, "nothing sent");

    // Over SSH: the same host and absolute folder is one place whatever the method and account.
    await writeConfig(config, {
      ...daemonKeys(root),
      remote_host: "archive.example.org",
      remote_base_path: "/data/incoming",
      jobs: [
        { name: "a", watch_path: join(root, "north"), transfer_method: "scp" },
        {
          name: "b",
          watch_path: join(root, "south"),
          transfer_method: "rsync",
          remote_user: "other",
          remote_host: "ARCHIVE.example.org",
        },
      ],
    });
    const ssh = await runCli(["config", "validate", "-c", config], { env });
    assert.equal(ssh.code, 2, ssh.stderr);
    assert.match(
      ssh.stderr,
      /remote_base_path of job b: job a sends into archive\.example\.org:\/data\/incoming too/i,
    );

    // This machine over SSH, spelled as a loopback address and as localhost: one folder; another
    // port may be a tunnel to another machine: its own.
    const here = async (ports: number[]) => {
      await writeConfig(config, {
        ...daemonKeys(root),
        remote_base_path: "/data/incoming",
        jobs: [
          {
            name: "a",
            watch_path: join(root, "north"),
            transfer_method: "scp",
            remote_host: "127.0.0.1",
            ssh_port: ports[0],
          },
          {
            name: "b",
            watch_path: join(root, "south"),
            transfer_method: "rsync",
            remote_host: "LocalHost",
            ssh_port: ports[1],
            remote_base_path: "/data//incoming/",
          },
        ],
      });
      return await runCli(["config", "validate", "-c", config], { env });
    };
    const one = await here([22, 22]);
    assert.equal(one.code, 2, one.stderr);
    assert.match(
      one.stderr,
      /remote_base_path of job b: job a sends into 127\.0\.0\.1:\/data\/incoming too/,
    );
    const tunnels = await here([2222, 2223]);
    assert.equal(tunnels.code, 0, tunnels.stderr);

    await writeConfig(config, {
      ...daemonKeys(root),
      transfer_method: "local",
      jobs: [
        { name: "north", watch_path: join(root, "north"), remote_base_path: join(dest, "north") },
        { name: "south", watch_path: join(root, "south"), remote_base_path: join(dest, "south") },
      ],
    });
    await runOnce(config, env, 0);
    assert.equal((await listFiles(dest)).length, 2, "each camera's image kept");
  });
});

Deno.test("two jobs merging one destination from an anchor are refused at the anchor's line", async () => {
  await withRoot(async (root, env) => {
    const config = join(root, "config.yaml");
    for (const camera of ["north", "south"]) await Deno.mkdir(join(root, camera));
    // The README's way of sharing settings: written once, merged into each job.
    await Deno.writeTextFile(
      config,
      [
        `state_dir: ${JSON.stringify(join(root, "state"))}`,
        'log_file: ""',
        "x-archive: &archive",
        "  transfer_method: local",
        `  remote_base_path: ${JSON.stringify(join(root, "dest"))}`,
        "jobs:",
        "  - <<: *archive",
        "    name: north",
        `    watch_path: ${JSON.stringify(join(root, "north"))}`,
        "  - <<: *archive",
        "    name: south",
        `    watch_path: ${JSON.stringify(join(root, "south"))}`,
        "",
      ].join("\n"),
    );
    const result = await runCli(["config", "validate", "-c", config], { env });
    assert.equal(result.code, 2, result.stderr);
    assert.ok(
      result.stderr.includes(`${config}:5: remote_base_path of job south: job north sends into`),
      result.stderr,
    );
  });
});

Deno.test("a local destination the watch would enter is refused; left out of the watch, it is accepted", async () => {
  await withRoot(async (root, env) => {
    const config = join(root, "config.yaml");
    const watch = join(root, "watch");
    await Deno.mkdir(watch);
    const bytes = randomBytes(1000);
    await Deno.writeFile(join(watch, "a.fits"), bytes);
    const local = { ...daemonKeys(root), transfer_method: "local", watch_path: watch };

    for (const base of [join(watch, "out"), watch]) {
      await writeConfig(config, { ...local, remote_base_path: base });
      const result = await runOnce(config, env, 2);
      assert.match(result.stderr, /is inside its watch_path .*sent again, without end/);
      assert.deepEqual(await listFiles(watch), ["a.fits"], "nothing sent");
    }

    // A night folder of the destination as the watch folder: that night's copies land in it.
    await writeConfig(config, {
      ...local,
      watch_path: join(root, "dest", "20240315"),
      remote_base_path: join(root, "dest"),
    });
    const night = await runCli(["config", "validate", "-c", config], { env });
    assert.equal(night.code, 2, night.stderr);
    assert.match(night.stderr, /is a night folder of its remote_base_path/);

    // Excluded from the watch, or hidden: never entered, so accepted, and each file goes once.
    await writeConfig(config, {
      ...local,
      remote_base_path: join(watch, "out"),
      exclude_patterns: ["out/**"],
    });
    await runOnce(config, env, 0);
    const sent = (await listFiles(join(watch, "out"))).filter((path) => path.endsWith("a.fits"));
    assert.equal(sent.length, 1, sent.join(", "));
    assert.deepEqual(await Deno.readFile(join(watch, "out", sent[0])), bytes);

    await writeConfig(config, { ...local, remote_base_path: join(watch, ".out") });
    const hidden = await runCli(["config", "validate", "-c", config], { env });
    assert.equal(hidden.code, 0, hidden.stderr);
  });
});

Deno.test("an scp or rsync destination on this machine (a loopback address, localhost, its name) the watch would enter is refused as a local one; a folder elsewhere, or a relative one, is accepted", async () => {
  await withRoot(async (root, env) => {
    const config = join(root, "config.yaml");
    const watch = join(root, "watch");
    await Deno.mkdir(watch);
    const ssh = { ...daemonKeys(root), watch_path: watch, remote_user: "obs", ssh_port: 2222 };
    const validate = () => runCli(["config", "validate", "-c", config], { env });
    const hosts = ["127.0.0.1", "localhost", "[::1]", "LocalHost", Deno.hostname()];
    for (const [i, remote_host] of hosts.entries()) {
      const transfer_method = i % 2 === 0 ? "scp" : "rsync";
      await writeConfig(config, {
        ...ssh,
        transfer_method,
        remote_host,
        remote_base_path: join(watch, "out"),
      });
      const result = await validate();
      assert.equal(result.code, 2, `${remote_host}: ${result.stderr}`);
      assert.match(
        result.stderr,
        /:\d+: remote_base_path of job default: .*\/watch\/out \(on .*, this machine\) is inside its watch_path .*sent again, without end/,
      );
    }
    for (const remote_base_path of [join(root, "dest"), "out"]) {
      await writeConfig(config, {
        ...ssh,
        transfer_method: "scp",
        remote_host: "localhost",
        remote_base_path,
      });
      const result = await validate();
      assert.equal(result.code, 0, `${remote_base_path}: ${result.stderr}`);
    }
    // Another machine: its folder is not this one's.
    await writeConfig(config, {
      ...ssh,
      transfer_method: "scp",
      remote_host: "archive.example.org",
      remote_base_path: join(watch, "out"),
    });
    assert.equal((await validate()).code, 0);
  });
});

Deno.test("a state_dir or log_file inside a watch folder whose patterns match their files is refused; left out, only the images go", async () => {
  await withRoot(async (root, env) => {
    const { config, watch } = await localJob(root, join(root, "dest"));
    await Deno.writeFile(join(watch, "a.txt"), randomBytes(1000));
    const inside = {
      ...daemonKeys(root),
      transfer_method: "local",
      watch_path: watch,
      remote_base_path: join(root, "dest"),
      state_dir: join(watch, "state"),
      log_file: join(watch, "image_transfer.log"),
      file_patterns: ["*"],
      stability_window_seconds: 0.5,
    };
    await writeConfig(config, inside);
    for (const args of [["config", "validate"], ["run", "--dry-run"], ["run", "--once"]]) {
      const result = await runCli([...args, "-c", config], { env });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(
        result.stderr,
        /config\.yaml:\d+: state_dir: .*state is inside the watch folder/,
      );
      assert.match(result.stderr, /ledger\.sqlite.*exclude_patterns: \["state\/"\]/);
      assert.match(result.stderr, /config\.yaml:\d+: log_file: .*image_transfer\.log is inside/);
      assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
    }
    assert.equal(existsSync(join(root, "dest")), false, "nothing sent");

    // Left out of the watch as the message says: the daemon's own files stay home.
    await writeConfig(config, { ...inside, exclude_patterns: ["state/", "image_transfer.log*"] });
    await runOnce(config, env, 0);
    const sent = await listFiles(join(root, "dest"));
    assert.equal(sent.length, 1, sent.join(", "));
    assert.match(sent[0], /^\d{8}\/a\.txt$/);

    // Patterns that match none of them (the default *.fits): accepted as they are.
    const { file_patterns: _all, ...fitsOnly } = inside;
    await writeConfig(config, fitsOnly);
    const fits = await runCli(["config", "validate", "-c", config], { env });
    assert.equal(fits.code, 0, fits.stderr);
  });
});

Deno.test("a local destination files arrived in before is not made again after a restart (a share that did not mount)", async () => {
  await withRoot(async (root, env) => {
    const base = join(root, "share", "images");
    const { config, watch } = await localJob(root, base, { retry_attempts: 0 });
    await Deno.writeFile(join(watch, "a.fits"), randomBytes(1000));
    // The first run makes the destination folder.
    await runOnce(config, env, 0);
    assert.deepEqual((await listFiles(base)).map((path) => path.split("/").pop()), ["a.fits"]);

    // The share is not mounted at the next start: its mount point is empty.
    await Deno.remove(base, { recursive: true });
    const bytes = randomBytes(1000);
    await Deno.writeFile(join(watch, "b.fits"), bytes);
    const unmounted = await runOnce(config, env, 1);
    assert.match(
      unmounted.stderr,
      /destination folder .*images is gone \(a share that is not mounted\?\)/,
    );
    assert.equal(existsSync(base), false, "nothing written below the mount point");

    await Deno.mkdir(base);
    await runOnce(config, env, 0);
    const sent = (await listFiles(base)).find((path) => path.endsWith("b.fits"))!;
    assert.deepEqual(await Deno.readFile(join(base, sent)), bytes);
  });
});

Deno.test("a running daemon does not make its destination folder again once files arrived there; it says so once, and when it is back", async () => {
  await withRoot(async (root, env) => {
    const base = join(root, "share", "images");
    const { config, watch } = await localJob(root, base, {
      stability_window_seconds: 0.3,
      retry_delay_seconds: 0.2,
      retry_max_delay_seconds: 0.5,
    });
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await daemon.waitForOutput("Watching");
      await Deno.writeFile(join(watch, "a.fits"), randomBytes(1000));
      await daemon.waitForOutput(/Successfully transferred .*a\.fits/);
      // The share goes away while the daemon runs: what arrives next waits for it.
      await Deno.remove(base, { recursive: true });
      const bytes = randomBytes(1000);
      await Deno.writeFile(join(watch, "b.fits"), bytes);
      await Deno.writeFile(join(watch, "c.fits"), bytes);
      await daemon.waitForOutput(
        /destination folder .*images is gone \(a share that is not mounted/,
      );
      // Several attempts of both files later, it was said once.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.equal(existsSync(base), false, "nothing written below the mount point");
      // Once as the pause begins (the first failed probe's WARNING repeats it, then it waits).
      assert.equal(
        daemon.stderr().match(/ERROR .*is gone \(a share that is not mounted/g)?.length,
        1,
        daemon.stderr(),
      );
      await Deno.mkdir(base);
      await daemon.waitForOutput(/The destination \S*images takes files again/);
      await daemon.waitForOutput(/Successfully transferred .*c\.fits/);
      await daemon.waitForOutput(/Successfully transferred .*b\.fits/);
    } finally {
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
    }
  });
});

Deno.test("a local destination that is a share's mount point: unmounted at a restart, its empty folder gets nothing, and doctor fails", async () => {
  await withRoot(async (root, env) => {
    // The mount point itself is the destination.
    const { server, base, config, watch } = await shareJob(root, { retry_attempts: 0 });
    await mountBindfs(server, base);
    try {
      await Deno.writeFile(join(watch, "a.fits"), randomBytes(1000));
      await runOnce(config, env, 0);
      assert.equal((await listFiles(server)).length, 1, "arrived on the share");
      await unmountBindfs(base);

      // The next start finds an empty folder on the local disk where the share was.
      const bytes = randomBytes(1000);
      await Deno.writeFile(join(watch, "b.fits"), bytes);
      const unmounted = await runOnce(config, env, 1);
      assert.match(
        unmounted.stderr,
        /destination folder .*share is gone \(a share that is not mounted\?\): an empty folder on \S+ stands where files arrived on fuse/,
      );
      assert.deepEqual(await listFiles(base), [], "nothing written below the mount point");
      const doctor = await runCli(["doctor", "-c", config], { env });
      assert.notEqual(doctor.code, 0, doctor.stdout);
      assert.match(doctor.stdout, /FAIL +destination folder: .*share: an empty folder on .* fuse/);

      // A marker file left in the mount point does not make it the destination.
      await Deno.writeTextFile(join(base, "NOT_MOUNTED"), "");
      const marked = await runOnce(config, env, 1);
      assert.match(
        marked.stderr,
        /share is gone \(a share that is not mounted\?\): a folder on \S+ without the files that arrived on fuse stands where they arrived \(\d{8}\/a\.fits is not there\)/,
      );
      assert.deepEqual(
        await listFiles(base),
        ["NOT_MOUNTED"],
        "nothing written below the mount point",
      );
      await Deno.remove(join(base, "NOT_MOUNTED"));

      await mountBindfs(server, base);
      await runOnce(config, env, 0);
      const sent = (await listFiles(server)).find((path) => path.endsWith("b.fits"))!;
      assert.deepEqual(await Deno.readFile(join(server, sent)), bytes);
    } finally {
      if (await isMounted(base)) await unmountBindfs(base);
    }
  });
});

Deno.test("a local destination that is a local disk's mount point: unmounted, its empty folder gets nothing and doctor fails; another disk mounted there takes the files", async () => {
  await withRoot(async (root, env) => {
    // A disk of the same kind as the one below can be told only by its mount point.
    const base = join(root, "disk");
    const { config, watch } = await localJob(root, base, { retry_attempts: 0 });
    await withTmpfs(base, "16m", async () => {
      await Deno.writeFile(join(watch, "a.fits"), randomBytes(1000));
      await runOnce(config, env, 0);
      assert.equal((await listFiles(base)).length, 1, "arrived on the disk");
    });

    // Unplugged: the empty folder below it is on the disk under the watch folder.
    const bytes = randomBytes(1000);
    await Deno.writeFile(join(watch, "b.fits"), bytes);
    const unmounted = await runOnce(config, env, 1);
    assert.match(
      unmounted.stderr,
      /destination folder .*disk is gone \(a share that is not mounted\?\): an empty folder (on \S+ )?stands where files arrived on the disk mounted there/,
    );
    assert.deepEqual(await listFiles(base), [], "nothing written below the mount point");
    const doctor = await runCli(["doctor", "-c", config], { env });
    assert.notEqual(doctor.code, 0, doctor.stdout);
    assert.match(
      doctor.stdout,
      /FAIL +destination folder: .*disk: an empty folder .*the disk mounted there/,
    );

    // The next disk, empty, mounted there: a mount point again, it takes the files.
    await withTmpfs(base, "16m", async () => {
      await runOnce(config, env, 0);
      const sent = (await listFiles(base)).find((path) => path.endsWith("b.fits"))!;
      assert.deepEqual(await Deno.readFile(join(base, sent)), bytes);
    });
  });
});

Deno.test("a local destination that is a folder of the same disk mounted there (mount --bind): unmounted, its empty folder gets nothing", async () => {
  await withRoot(async (root, env) => {
    // The same device above and below: only the mount table tells it is a mount point.
    const [store, base] = [join(root, "store"), join(root, "bound dest")];
    const { config, watch } = await localJob(root, base, { retry_attempts: 0 });
    const first = randomBytes(1000);
    await withBindMount(store, base, async () => {
      await Deno.writeFile(join(watch, "a.fits"), first);
      await runOnce(config, env, 0);
    });
    const [arrived] = await listFiles(store);
    assert.deepEqual(await Deno.readFile(join(store, arrived)), first, "arrived in the store");

    // Before: b.fits went into the empty folder below the mount point, on the disk under it.
    await Deno.writeFile(join(watch, "b.fits"), randomBytes(1000));
    const unmounted = await runOnce(config, env, 1);
    assert.match(
      unmounted.stderr,
      /destination folder .*bound dest is gone \(a share that is not mounted\?\): an empty folder (on \S+ )?stands where files arrived on the disk mounted there/,
    );
    assert.deepEqual(await listFiles(base), [], "nothing written below the mount point");

    // Mounted again, it takes the file.
    await withBindMount(store, base, () => runOnce(config, env, 0));
    assert.equal((await listFiles(store)).filter((path) => path.endsWith("b.fits")).length, 1);
  });
});

Deno.test("an scp or rsync destination whose base path is a disk's mount point: unmounted, its empty folder gets nothing, whether files go in one call or by the upload program; another disk mounted there takes them", async () => {
  const sshd = await startSshd();
  try {
    for (const method of ["scp", "rsync"] as const) {
      const box = await sshSandbox(sshd, method, { retry_attempts: 0 });
      try {
        const { uid, gid } = await Deno.stat(box.remote);
        const mounted = (fn: () => Promise<void>) =>
          withTmpfs(box.remote, "32m", fn, { uid: uid!, gid: gid! });
        await mounted(async () => {
          await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(1000));
          await runOnce(box.config, box.env, 0);
          assert.equal((await listFiles(box.remote)).length, 1, `${method}: arrived on the disk`);
        });

        // Unplugged: a small file (one call) and a large one (the upload program) get nothing.
        const files = { "b.fits": randomBytes(1000), "c.fits": randomBytes(9 * 1024 * 1024) };
        for (const [name, bytes] of Object.entries(files)) {
          await Deno.writeFile(join(box.watch, name), bytes);
        }
        const unmounted = await runOnce(box.config, box.env, 1);
        assert.match(
          unmounted.stderr,
          /destination folder .* is gone \(a share that is not mounted\?\): an empty folder stands where files arrived on the disk mounted there/,
        );
        assert.deepEqual([...Deno.readDirSync(box.remote)], [], `${method}: nothing below it`);
        const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
        assert.notEqual(doctor.code, 0, doctor.stdout);
        assert.match(
          doctor.stdout,
          /FAIL +destination folder: .*: the destination folder .* is gone .*: an empty folder stands where files arrived on the disk mounted there/,
        );

        // The next disk, empty, mounted there: a mount point again, it takes the files.
        await mounted(async () => {
          await runOnce(box.config, box.env, 0);
          const arrived = await listFiles(box.remote);
          for (const [name, bytes] of Object.entries(files)) {
            const rel = arrived.find((path) => path.endsWith(`/${name}`));
            assert.ok(rel, `${method}: ${name} arrived (${arrived})`);
            assert.deepEqual(await Deno.readFile(join(box.remote, rel)), bytes);
          }
        });
      } finally {
        await Deno.remove(box.root, { recursive: true });
      }
    }
  } finally {
    await sshd.stop();
  }
});

Deno.test("a local destination share unmounted in the middle of a copy and mounted again: said as the destination gone (no attempt used up), the file arrives whole, and no temporary copy is left beside it", async () => {
  await withRoot(async (root, env) => {
    // Slow enough to unmount the share in the middle of the copy.
    const { server, base, config, watch } = await shareJob(root, { bandwidth_limit: "4MB/s" });
    await Deno.mkdir(base);
    await mountBindfs(server, base);
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await daemon.waitForOutput("Watching");
      await Deno.writeFile(join(watch, "a.fits"), randomBytes(1000));
      await daemon.waitForOutput(/Successfully transferred .*a\.fits/);
      const bytes = randomBytes(8 * 1024 * 1024);
      await Deno.writeFile(join(watch, "big.fits"), bytes);
      await waitFor(
        async () =>
          (await listFiles(server)).some((rel) => rel.endsWith(".image-transfer-partial")),
        60_000,
        "the copy on its way",
      );
      await unmountBindfs(base);
      // Said as the destination gone, which the job waits for: no attempt of the file is used up.
      await daemon.waitForOutput(
        /the destination folder .* is gone \(a share that is not mounted\?\)/,
      );
      await mountBindfs(server, base);
      await daemon.waitForOutput(/Successfully transferred .*big\.fits/);
      assert.doesNotMatch(daemon.stderr(), /Attempt \d+ of .*big\.fits failed/);
      const files = await listFiles(server);
      assert.deepEqual(files.map((rel) => rel.replace(/^\d{8}\//, "")), ["a.fits", "big.fits"]);
      assert.deepEqual(await Deno.readFile(join(server, files[1])), bytes);
    } finally {
      const status = await daemon.stop();
      if (await isMounted(base)) await unmountBindfs(base);
      assert.equal(status.code, 0, daemon.stderr());
    }
  });
});

Deno.test("doctor fails on a local destination whose share's client died (ENOTCONN), never checking the disk below", async () => {
  await withRoot(async (root, env) => {
    const { server, base, config } = await shareJob(root);
    const client = await mountBindfsProcess(server, base);
    try {
      client.kill("SIGKILL");
      await client.status;
      const doctor = await runCli(["doctor", "-c", config], { env });
      assert.notEqual(doctor.code, 0, doctor.stdout);
      assert.match(
        doctor.stdout,
        /FAIL +destination folder: .*share cannot be read: .*mount it again/,
      );
      assert.doesNotMatch(doctor.stdout, /destination writable/);
    } finally {
      if (await isMounted(base)) await unmountBindfs(base);
    }
  });
});

Deno.test("a job that deletes or moves sources watches its folder alone, also through a link or a bind mount; different endings may share it", async () => {
  await withRoot(async (root, env) => {
    const config = join(root, "config.yaml");
    const watch = join(root, "watch");
    await Deno.mkdir(join(watch, "sub"), { recursive: true });
    await Deno.symlink(watch, join(root, "link"));
    const validate = () => runCli(["config", "validate", "-c", config], { env });
    const jobs = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      writeConfig(config, {
        ...daemonKeys(root),
        transfer_method: "local",
        jobs: [
          { name: "backup", remote_base_path: join(root, "backup"), ...a },
          { name: "archive", remote_base_path: join(root, "archive"), ...b },
        ],
      });

    // The same folder through a link, and a folder inside it: refused.
    for (const watched of [join(root, "link"), join(root, "link", "sub")]) {
      await jobs(
        { watch_path: watched, after_transfer: "move", archive_path: join(root, "done") },
        { watch_path: watch },
      );
      const shared = await validate();
      assert.equal(shared.code, 2, shared.stderr);
      assert.match(
        shared.stderr,
        /after_transfer of job backup: "move" would take sources away from job archive, which watches .*watch too/,
      );
    }
    // The same folder mounted at another path too, and a folder inside it: refused. Before: ok,
    // and the delete job took the other job's files away.
    await Deno.mkdir(join(root, "other"));
    await withBindMount(watch, join(root, "bound"), async () => {
      for (const watched of [join(root, "bound"), join(root, "bound", "sub")]) {
        await jobs({ watch_path: watched, after_transfer: "delete" }, { watch_path: watch });
        const bound = await validate();
        assert.equal(bound.code, 2, bound.stderr);
        assert.match(
          bound.stderr,
          /after_transfer of job backup: "delete" would take sources away from job archive/,
        );
      }
      // An archive that is the watch folder's sub folder, mounted elsewhere.
      await jobs({
        watch_path: watch,
        after_transfer: "move",
        archive_path: join(root, "bound", "sub"),
      }, { watch_path: join(root, "other") });
      const archivedBound = await validate();
      assert.equal(archivedBound.code, 2, archivedBound.stderr);
      assert.match(archivedBound.stderr, /archive_path of job backup: .* must not contain each/);
    });
    // An archive inside the watch folder through a link: moved files would be found again.
    await writeConfig(config, {
      ...daemonKeys(root),
      transfer_method: "local",
      watch_path: watch,
      remote_base_path: join(root, "backup"),
      after_transfer: "move",
      archive_path: join(root, "link", "done"),
    });
    const archived = await validate();
    assert.equal(archived.code, 2, archived.stderr);
    assert.match(archived.stderr, /archive_path of job default: .* must not contain each other/);

    // Different endings never meet: accepted.
    await jobs(
      { watch_path: watch, file_patterns: ["*.fits", "*.fz"], after_transfer: "delete" },
      { watch_path: join(root, "link"), file_patterns: ["*.log"] },
    );
    const apart = await validate();
    assert.equal(apart.code, 0, apart.stderr);
    // An ending in both lists (whatever its case) is refused again.
    await jobs(
      { watch_path: watch, file_patterns: ["*.fits"], after_transfer: "delete" },
      { watch_path: watch, file_patterns: ["*.log", "*.FITS"] },
    );
    assert.equal((await validate()).code, 2);
    // Both matching case-sensitively: *.fits and *.FITS are different files.
    await jobs(
      {
        watch_path: watch,
        file_patterns: ["*.fits"],
        after_transfer: "delete",
        case_sensitive_patterns: true,
      },
      { watch_path: watch, file_patterns: ["*.FITS"], case_sensitive_patterns: true },
    );
    const cased = await validate();
    assert.equal(cased.code, 0, cased.stderr);
    // One of them caseless: it takes *.FITS too.
    await jobs(
      {
        watch_path: watch,
        file_patterns: ["*.fits"],
        after_transfer: "delete",
        case_sensitive_patterns: true,
      },
      { watch_path: watch, file_patterns: ["*.FITS"] },
    );
    assert.equal((await validate()).code, 2);
  });
});

Deno.test("local jobs that send into each other's watch folders, round to the first, are refused; a chain that ends is accepted", async () => {
  await withRoot(async (root, env) => {
    const config = join(root, "config.yaml");
    for (const name of ["wa", "wb", "wc"]) await Deno.mkdir(join(root, name));
    await Deno.writeFile(join(root, "wa", "f.fits"), randomBytes(2880));
    const local = { ...daemonKeys(root), transfer_method: "local" };
    const job = (name: string, watch: string, base: string) => ({
      name,
      watch_path: join(root, watch),
      remote_base_path: join(root, base),
    });

    // a → b → a, and a → b → c → a.
    for (
      const jobs of [
        [job("a", "wa", "wb/out"), job("b", "wb", "wa/out")],
        [job("a", "wa", "wb/out"), job("b", "wb", "wc/out"), job("c", "wc", "wa/out")],
      ]
    ) {
      await writeConfig(config, { ...local, jobs });
      const validate = await runCli(["config", "validate", "-c", config], { env });
      assert.equal(validate.code, 2, validate.stderr);
      const names = jobs.map((j) => j.name);
      assert.match(
        validate.stderr,
        new RegExp(
          `remote_base_path of job a: ${
            names.map((n) => `job ${n} sends into [^;]+, which job \\w watches`).join("; ")
          }: every file would be copied round`,
        ),
      );
      assert.equal(validate.stderr.match(/copied round/g)?.length, 1, "said once per round");
      await runOnce(config, env, 2);
      assert.deepEqual(await listFiles(join(root, "wb")), [], "nothing sent");
    }

    // a → b → a, but for different file name endings: b never sends a's copies.
    await writeConfig(config, {
      ...local,
      jobs: [
        { ...job("a", "wa", "wb/out"), file_patterns: ["*.fits"] },
        { ...job("b", "wb", "wa/out"), file_patterns: ["*.log"] },
      ],
    });
    const endings = await runCli(["config", "validate", "-c", config], { env });
    assert.equal(endings.code, 0, endings.stderr);

    // a → b → elsewhere: each file goes on once, and stops.
    await writeConfig(config, {
      ...local,
      jobs: [job("a", "wa", "wb/out"), job("b", "wb", "dest")],
    });
    await runOnce(config, env, 0);
    assert.equal((await listFiles(join(root, "wb"))).length, 1);
  });
});
