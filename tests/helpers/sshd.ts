/**
 * A private OpenSSH server for transfer tests (on 127.0.0.1 unless told
 * otherwise, e.g. inside a network namespace): its own host key, client key,
 * known_hosts and an unprivileged login user. No ~/.ssh/config is involved:
 * the transport gets host, port, identity file and ssh_options.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import type { JobConfig } from "../../src/config/types.ts";
import { exists, LEAST_CEILING_MS, waitFor, writeConfig } from "./files.ts";
import { transportTestJob } from "./jobs.ts";
import { type RunningCli, startCli } from "./cli.ts";
import { freePort } from "./net.ts";
import { descendants, killTree, listensOn, processEnded, runningProcesses } from "./processes.ts";

/** Unprivileged account the tests log in as. */
export const TEST_USER = "itx-test";

/** A running test server. */
export interface TestSshd {
  /** The address the server listens on (the jobs' `remote_host`). */
  host: string;
  port: number;
  /** Process id of the listening server (each connection is served by a child of it). */
  pid: number;
  /** Private folder of keys, config and logs (removed by `stop`). */
  dir: string;
  user: string;
  uid: number;
  gid: number;
  identityFile: string;
  knownHosts: string;
  /** `ssh_options` that pin the host key to this server's known_hosts. */
  sshOptions: string[];
  /** Make a fresh folder under /tmp owned by the login user. */
  makeRemoteDir(prefix?: string): Promise<string>;
  /** The server's log (LogLevel INFO: one `Accepted publickey` line per login). */
  sshdLog(): Promise<string>;
  /** How many SSH connections have logged in so far. */
  logins(): Promise<number>;
  /** Processes serving connections now (every process below the listening server). */
  sessionPids(): Promise<number[]>;
  /** A job config for this server; `overrides` win. */
  job(overrides: Partial<JobConfig>): JobConfig;
  /**
   * Stop the server (an outage: connections are refused), keeping its keys, config and folders;
   * {@linkcode restart} brings it back on the same port.
   */
  halt(): Promise<void>;
  /** Start the halted server again, as it was. */
  restart(): Promise<void>;
  /** The config-file keys that point a job at this server (host, user, port, key, options). */
  configKeys(): Record<string, unknown>;
  stop(): Promise<void>;
}

const REQUIRED: [string, string][] = [
  ["/usr/sbin/sshd", "openssh-server"],
  ["ssh", "openssh-client"],
  ["scp", "openssh-client"],
  ["ssh-keygen", "openssh-client"],
  ["rsync", "rsync"],
];

async function onPath(program: string): Promise<boolean> {
  if (program.startsWith("/")) return await exists(program);
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && await exists(join(dir, program))) return true;
  }
  return false;
}

async function run(argv: string[], allowFailure = false): Promise<string> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success && !allowFailure) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return out.success ? text : "";
}

/** Create the login user once; with `UsePAM no` sshd refuses locked (`!`) accounts. */
async function ensureUser(): Promise<{ uid: number; gid: number }> {
  if ((await run(["id", "-u", TEST_USER], true)).trim() === "") {
    await run(["useradd", "-m", "-s", "/bin/bash", TEST_USER], true);
  }
  const shadow = await run(["getent", "shadow", TEST_USER]);
  if (shadow.split(":")[1]?.startsWith("!")) await run(["usermod", "-p", "*", TEST_USER]);
  const uid = Number((await run(["id", "-u", TEST_USER])).trim());
  const gid = Number((await run(["id", "-g", TEST_USER])).trim());
  return { uid, gid };
}

async function waitForPort(
  hostname: string,
  port: number,
  child: Deno.ChildProcess,
  dir: string,
): Promise<void> {
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + LEAST_CEILING_MS;
  while (Date.now() < deadline && !exited) {
    // Its own socket, not a connection: another test's server may answer on a port taken meanwhile.
    if (await listensOn(child.pid, port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (!exited) child.kill("SIGKILL");
  await child.status;
  const log = await Deno.readTextFile(join(dir, "sshd.log")).catch(() => "");
  throw new SshdNotListening(`sshd did not start listening on ${hostname} port ${port}:\n${log}`);
}

/** The server ended, or did not listen, before its port answered (the port taken meanwhile). */
class SshdNotListening extends Error {}

/** Options of {@linkcode startSshd}. */
export interface SshdOptions {
  /** Environment variables the server sets in every session (`SetEnv`), PATH included. */
  sessionEnv?: Record<string, string>;
  /**
   * The program of the `sftp` subsystem (scp's uploads); `null`: no `Subsystem sftp` line, a
   * server without SFTP. @default sshd's own internal-sftp
   */
  sftpServer?: string | null;
  /** IPv4 address to listen on. @default "127.0.0.1" */
  listenAddress?: string;
  /** argv that runs sshd, e.g. inside a network namespace (`ip netns exec NS`). @default none */
  commandPrefix?: string[];
  /** A `ForceCommand` for every session (e.g. `internal-sftp`, an sftp-only account). @default none */
  forceCommand?: string;
}

/**
 * Start a private sshd. Fails (never skips) when a required program is missing,
 * naming the Debian package to install.
 */
export async function startSshd(options: SshdOptions = {}): Promise<TestSshd> {
  for (const [program, pkg] of REQUIRED) {
    if (!await onPath(program)) {
      throw new Error(`Cannot run SSH tests: ${program} is missing; apt-get install ${pkg}`);
    }
  }
  const { uid, gid } = await ensureUser();
  const dir = await Deno.makeTempDir({ prefix: "itx-sshd-" });
  // sshd reads authorized_keys as the login user.
  await Deno.chmod(dir, 0o711);
  const hostKey = join(dir, "host_ed25519");
  // A space and a quote: rsync's -e splitting must keep the path whole.
  const identityFile = join(dir, "client key's");
  await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "itx-host", "-f", hostKey]);
  await run([
    "ssh-keygen",
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    "itx-client",
    "-f",
    identityFile,
  ]);
  const authorizedKeys = join(dir, "authorized_keys");
  await Deno.copyFile(`${identityFile}.pub`, authorizedKeys);
  await Deno.chmod(authorizedKeys, 0o644);
  await Deno.mkdir("/run/sshd", { recursive: true });

  const host = options.listenAddress ?? "127.0.0.1";
  let port = freePort();
  const config = join(dir, "sshd_config");
  const writeConfig = () =>
    Deno.writeTextFile(
      config,
      [
        `ListenAddress ${host}`,
        `Port ${port}`,
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        `AllowUsers ${TEST_USER}`,
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "X11Forwarding no",
        "PrintMotd no",
        "PrintLastLog no",
        "MaxStartups 200:30:400",
        // MaxSessions stays at OpenSSH's default (10), as on real servers.
        "AcceptEnv LANG LC_*",
        "LogLevel INFO",
        ...options.sftpServer === null
          ? []
          : [`Subsystem sftp ${options.sftpServer ?? "internal-sftp"}`],
        ...Object.entries(options.sessionEnv ?? {}).map(([key, value]) => `SetEnv ${key}=${value}`),
        ...options.forceCommand ? [`ForceCommand ${options.forceCommand}`] : [],
        "",
      ].join("\n"),
    );
  await writeConfig();
  const argv = [
    ...options.commandPrefix ?? [],
    "/usr/sbin/sshd",
    "-D",
    "-f",
    config,
    "-E",
    join(dir, "sshd.log"),
  ];
  const spawn = async () => {
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPort(host, port, child, dir);
    return child;
  };
  // The free port can be taken by another test before sshd binds it: then another port.
  const firstSpawn = async (tries: number): Promise<Deno.ChildProcess> => {
    try {
      return await spawn();
    } catch (error) {
      if (!(error instanceof SshdNotListening) || tries === 3) throw error;
      port = freePort();
      await writeConfig();
      return await firstSpawn(tries + 1);
    }
  };
  let sshd = await firstSpawn(1);
  /** End the listening server and the sessions it serves. */
  const end = async () => {
    // Sessions of connections whose client vanished (a cut link) outlive the listener.
    await killTree(sshd.pid);
    await sshd.status;
  };

  const knownHosts = join(dir, "known_hosts");
  const hostPub = (await Deno.readTextFile(`${hostKey}.pub`)).split(" ").slice(0, 2).join(" ");
  await Deno.writeTextFile(knownHosts, `[${host}]:${port} ${hostPub}\n`);
  const sshOptions = [`UserKnownHostsFile=${knownHosts}`, "GlobalKnownHostsFile=/dev/null"];
  const remoteDirs: string[] = [];

  return {
    host,
    port,
    get pid() {
      return sshd.pid;
    },
    dir,
    user: TEST_USER,
    uid,
    gid,
    identityFile,
    knownHosts,
    sshOptions,
    async makeRemoteDir(prefix = "itx-dst-") {
      const path = await Deno.makeTempDir({ prefix });
      await Deno.chown(path, uid, gid);
      remoteDirs.push(path);
      return path;
    },
    sshdLog: () => Deno.readTextFile(join(dir, "sshd.log")).catch(() => ""),
    async logins() {
      const log = await Deno.readTextFile(join(dir, "sshd.log")).catch(() => "");
      return log.split("\n").filter((line) => line.includes("Accepted publickey")).length;
    },
    sessionPids: () => descendants(sshd.pid),
    configKeys() {
      return {
        remote_host: host,
        remote_user: TEST_USER,
        ssh_port: port,
        ssh_identity_file: identityFile,
        ssh_options: sshOptions,
      };
    },
    job(overrides) {
      return transportTestJob("ssh-test", {
        transfer_method: "scp",
        remote_host: host,
        remote_user: TEST_USER,
        remote_base_path: "/nonexistent-base",
        verify_transfer: "size",
        transfer_timeout_seconds: 120,
        ssh_port: port,
        ssh_identity_file: identityFile,
        ssh_options: sshOptions,
      }, overrides);
    },
    halt: end,
    async restart() {
      sshd = await spawn();
    },
    async stop() {
      await end();
      for (const path of remoteDirs) await Deno.remove(path, { recursive: true }).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** A daemon's folders and config file, sending to a private sshd. */
export interface SshSandbox {
  root: string;
  /** The watch folder. */
  watch: string;
  /** The remote base folder (owned by the login user). */
  remote: string;
  config: string;
  /** Environment for the CLI: a private HOME. */
  env: Record<string, string>;
}

/**
 * Write `config` with one job per method of `methods`, named after it, watching `watch` and
 * sending to `sshd` into `base`/METHOD (for doctor's checks of each method side by side).
 */
export async function methodJobsConfig(
  config: string,
  sshd: TestSshd,
  watch: string,
  base: string,
  methods: ("scp" | "rsync")[],
): Promise<void> {
  const jobs = methods.map((method) => ({
    ...sshd.configKeys(),
    name: method,
    watch_path: watch,
    transfer_method: method,
    remote_base_path: `${base}/${method}`,
  }));
  await Deno.writeTextFile(config, stringify({ jobs }));
}

/**
 * Make a watch folder, a remote folder and a config file (UTC night folders,
 * ledger in the sandbox, no log file) for a daemon that sends to `sshd` with
 * `method`; `values` are added to the config and win.
 */
export async function sshSandbox(
  sshd: TestSshd,
  method: "scp" | "rsync",
  values: Record<string, unknown> = {},
): Promise<SshSandbox> {
  const root = await Deno.makeTempDir({ prefix: `itx-${method}-` });
  const remote = await sshd.makeRemoteDir();
  const watch = join(root, "watch");
  await Deno.mkdir(watch);
  await Deno.mkdir(join(root, "home"));
  const config = join(root, "config.yaml");
  await writeConfig(config, {
    watch_path: watch,
    transfer_method: method,
    ...sshd.configKeys(),
    remote_base_path: remote,
    night_timezone: "UTC",
    state_dir: join(root, "state"),
    log_file: "",
    ...values,
  });
  return { root, watch, remote, config, env: { HOME: join(root, "home") } };
}

/** A program stopped while it asks an SSH destination: its server, sandbox and runtime folder. */
export interface StoppedWhileAsking {
  sshd: TestSshd;
  box: SshSandbox;
  /** The program's temporary folder (its TMPDIR), where its runtime folder (the socket) is made. */
  tmp: string;
  /** Assert that the one master of `who` (its title names its socket in `tmp`) runs; keep it. */
  theMaster(who: string): Promise<void>;
  /** Wait for that master to end; assert no master is left and `who`'s runtime folder removed. */
  masterGone(who: string): Promise<void>;
}

/**
 * Run `fn` with a private sshd whose sessions find the programs of `remoteTools` first (stand-ins
 * that hold the program's questions) and an scp sandbox sending to it. After `fn`, a master still
 * running is killed, the sandbox removed and the sshd stopped.
 */
export async function withStoppedWhileAsking(
  remoteTools: string,
  fn: (ctx: StoppedWhileAsking) => Promise<void>,
): Promise<void> {
  const sshd = await startSshd({ sessionEnv: { PATH: `${remoteTools}:/usr/bin:/bin` } });
  const box = await sshSandbox(sshd, "scp");
  const tmp = join(box.root, "tmp");
  await Deno.mkdir(tmp);
  const masters = () =>
    runningProcesses((argv) => argv[0].startsWith("ssh: ") && argv.join(" ").includes(tmp));
  let master = 0;
  try {
    await fn({
      sshd,
      box,
      tmp,
      async theMaster(who) {
        const running = await masters();
        assert.equal(running.length, 1, `${who}'s shared connection`);
        master = running[0].pid;
      },
      async masterGone(who) {
        await waitFor(() => processEnded(master), 30_000, `the master ended with ${who}`);
        assert.deepEqual(await masters(), []);
        assert.deepEqual([...Deno.readDirSync(tmp)], [], `${who}'s runtime folder removed`);
      },
    });
  } finally {
    if (master !== 0 && !processEnded(master)) Deno.kill(master, "SIGKILL");
    await Deno.remove(box.root, { recursive: true });
    await sshd.stop();
  }
}

/** A daemon (`run`) that sends to its own private sshd, with that sshd and its sandbox. */
export interface SshDaemon extends AsyncDisposable {
  sshd: TestSshd;
  box: SshSandbox;
  daemon: RunningCli;
}

/**
 * Start a private sshd and a daemon (`run`, not yet watching) that sends to it with `method`,
 * short stability window and retry delay, no periodic rescan, status page on `status_listen`
 * (`""`: none). Disposing it stops the daemon and the sshd and removes the sandbox.
 */
export async function startSshDaemon(
  method: "scp" | "rsync",
  status_listen: string,
): Promise<SshDaemon> {
  const sshd = await startSshd();
  const box = await sshSandbox(sshd, method, {
    stability_window_seconds: 0.3,
    retry_delay_seconds: 0.2,
    rescan_interval_seconds: 0,
    status_listen,
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  return {
    sshd,
    box,
    daemon,
    async [Symbol.asyncDispose]() {
      await daemon.stop();
      await sshd.stop();
      await Deno.remove(box.root, { recursive: true });
    },
  };
}

/**
 * An in-process pipeline job through `sshd` with `method` from `root/watch` (made by the test):
 * `*.fits`, night folders in UTC, short stability window and retries, two transfers at a time,
 * checksums verified; `overrides` win.
 */
export function sshPipelineJob(
  sshd: TestSshd,
  method: "scp" | "rsync",
  root: string,
  overrides: Partial<JobConfig>,
): JobConfig {
  return sshd.job({
    transfer_method: method,
    watch_path: join(root, "watch"),
    file_patterns: ["*.fits"],
    stability_window_seconds: 0.2,
    night_timezone: "UTC",
    retry_attempts: 2,
    retry_delay_seconds: 0.1,
    retry_max_delay_seconds: 0.2,
    max_concurrent_transfers: 2,
    verify_transfer: "checksum",
    ...overrides,
  });
}
