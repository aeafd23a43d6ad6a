/**
 * A private vsftpd on 127.0.0.1 for FTP tests: its own config file, a free
 * control port and passive port range, a self-signed TLS certificate made
 * with `openssl req` for 127.0.0.1, and a password login user.
 *
 * @module
 */
import { join } from "node:path";
import type { JobConfig } from "../../src/config/types.ts";
import { LEAST_CEILING_MS, writeConfig } from "./files.ts";
import { transportTestJob } from "./jobs.ts";
import { freePort, freePorts, selfSignedCert } from "./net.ts";
import { killTree, listensOn } from "./processes.ts";

/** Account the FTP tests log in as (a password login, unlike the SSH tests' user). */
export const FTP_USER = "itx-ftp";
/** Its password (a throwaway account that only the loopback test servers accept). */
export const FTP_PASSWORD = "itx ftp p@ss 'word'";

/** Options of {@linkcode startVsftpd}. */
export interface VsftpdOptions {
  /** Offer TLS (default true); without it `AUTH TLS` is refused. */
  tls?: boolean;
  /** Upload speed limit in bytes per second (0: none). */
  maxRateBytes?: number;
  /** Require TLS session reuse on data connections (vsftpd's default; off by default here). */
  sslReuse?: boolean;
  /** Seconds an idle control connection is kept (vsftpd's default: 300). */
  idleSeconds?: number;
  /** Connections it takes from one address at once (`max_per_ip`; 0, the default: any number). */
  maxPerIp?: number;
  /** Let the login download (default true); `false` makes an upload-only account. */
  downloads?: boolean;
  /** Speak TLS from the first byte (implicit FTPS, as on port 990) instead of after `AUTH TLS`. */
  implicitTls?: boolean;
  /** The names its certificate is made for (openssl's subjectAltName; default 127.0.0.1, localhost). */
  certNames?: string;
  /** Log every command the server receives (`log_ftp_protocol`), for {@linkcode TestVsftpd.commands}. */
  logCommands?: boolean;
  /** Commands it refuses (`cmds_denied`, answered `550 Permission denied.`), e.g. `["RNFR", "RNTO"]`. */
  deniedCommands?: string[];
}

/** A running test server. */
export interface TestVsftpd {
  port: number;
  /** The login user's uid and gid (what it writes files as). */
  uid: number;
  gid: number;
  /** Private folder of the config, certificate, password file and log. */
  dir: string;
  /** The server's certificate (PEM), to trust through `ftp_ca_file`. */
  certFile: string;
  /** A file holding {@linkcode FTP_PASSWORD}. */
  passwordFile: string;
  /** Make a fresh folder under /tmp owned by the login user. */
  makeRemoteDir(prefix?: string): Promise<string>;
  /** How many logins succeeded so far. */
  logins(): Promise<number>;
  /**
   * The commands the server received so far, in order, as sent (`STOR /a/b`), from its log
   * (only with {@linkcode VsftpdOptions.logCommands}; `PASS` is logged by vsftpd as `PASS <password>`).
   */
  commands(): Promise<string[]>;
  /** A job for this server; `overrides` win. */
  job(overrides: Partial<JobConfig>): JobConfig;
  /** The config-file keys that point a job at this server. */
  configKeys(): Record<string, unknown>;
  /** Kill the server and every session at once (as a crash or power cut would). */
  kill(): Promise<void>;
  /**
   * Kill (SIGKILL) each session's first process, the listener left running: the half of a TLS
   * session that is left writes its last words (`500 OOPS: …`) in plain text on the encrypted
   * control connection, as when a crash or a stop ends a session's processes one by one.
   */
  killSessions(): Promise<void>;
  /** Start it again on the same port after {@linkcode TestVsftpd.kill}. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function run(argv: string[], allowFailure = false, stdin?: string): Promise<string> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  if (!out.success && !allowFailure) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Create the login user once and (re)set its password. */
async function ensureUser(): Promise<{ uid: number; gid: number }> {
  if ((await run(["id", "-u", FTP_USER], true)).trim() === "") {
    await run(["useradd", "-m", "-s", "/bin/bash", FTP_USER], true);
  }
  await run(["chpasswd"], false, `${FTP_USER}:${FTP_PASSWORD}\n`);
  const uid = Number((await run(["id", "-u", FTP_USER])).trim());
  const gid = Number((await run(["id", "-g", FTP_USER])).trim());
  return { uid, gid };
}

/** The server ended before it listened (its free port taken by another test meanwhile). */
class VsftpdNotListening extends Error {}

/** Wait until `server` itself listens on `port`: not any server answering there. */
async function waitForPort(server: Deno.ChildProcess, port: number, dir: string): Promise<void> {
  let exited = false;
  server.status.then(() => exited = true);
  const deadline = Date.now() + LEAST_CEILING_MS;
  while (Date.now() < deadline && !exited) {
    if (await listensOn(server.pid, port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (!exited) server.kill("SIGKILL");
  await server.status;
  const log = await Deno.readTextFile(join(dir, "vsftpd.log")).catch(() => "");
  throw new VsftpdNotListening(`vsftpd did not start listening on port ${port}:\n${log}`);
}

/**
 * Start a private vsftpd. Fails (never skips) when vsftpd or openssl is
 * missing, naming the Debian package to install.
 */
export async function startVsftpd(options: VsftpdOptions = {}): Promise<TestVsftpd> {
  for (const [program, pkg] of [["/usr/sbin/vsftpd", "vsftpd"], ["/usr/bin/openssl", "openssl"]]) {
    try {
      await Deno.stat(program);
    } catch {
      throw new Error(`Cannot run FTP tests: ${program} is missing; apt-get install ${pkg}`);
    }
  }
  const { uid, gid } = await ensureUser();
  const dir = await Deno.makeTempDir({ prefix: "itx-vsftpd-" });
  const empty = join(dir, "empty");
  await Deno.mkdir(empty, { mode: 0o755 });
  const { cert: certFile, key: keyFile } = await selfSignedCert(dir, options.certNames);
  const passwordFile = join(dir, "password");
  await Deno.writeTextFile(passwordFile, `${FTP_PASSWORD}\n`, { mode: 0o600 });
  let port = freePort();
  const passive = freePorts(21);
  const tls = options.tls ?? true;
  const config = join(dir, "vsftpd.conf");
  const writeVsftpdConfig = () =>
    Deno.writeTextFile(
      config,
      [
        "listen=YES",
        "listen_ipv6=NO",
        "listen_address=127.0.0.1",
        `listen_port=${port}`,
        "background=NO",
        "anonymous_enable=NO",
        "local_enable=YES",
        "write_enable=YES",
        "local_umask=022",
        "pasv_enable=YES",
        "pasv_address=127.0.0.1",
        `pasv_min_port=${passive}`,
        `pasv_max_port=${passive + 20}`,
        `secure_chroot_dir=${empty}`,
        "pam_service_name=vsftpd",
        "seccomp_sandbox=NO",
        "isolate=NO",
        "isolate_network=NO",
        "delay_failed_login=0",
        "max_login_fails=1",
        `vsftpd_log_file=${join(dir, "vsftpd.log")}`,
        "xferlog_enable=YES",
        "xferlog_std_format=NO",
        `log_ftp_protocol=${options.logCommands ? "YES" : "NO"}`,
        `local_max_rate=${options.maxRateBytes ?? 0}`,
        `idle_session_timeout=${options.idleSeconds ?? 300}`,
        `max_per_ip=${options.maxPerIp ?? 0}`,
        `download_enable=${options.downloads === false ? "NO" : "YES"}`,
        ...(options.deniedCommands ? [`cmds_denied=${options.deniedCommands.join(",")}`] : []),
        ...(tls
          ? [
            "ssl_enable=YES",
            `rsa_cert_file=${certFile}`,
            `rsa_private_key_file=${keyFile}`,
            "force_local_logins_ssl=YES",
            "force_local_data_ssl=YES",
            // Deno cannot resume the control connection's TLS session on data connections.
            `require_ssl_reuse=${options.sslReuse ? "YES" : "NO"}`,
            `implicit_ssl=${options.implicitTls ? "YES" : "NO"}`,
          ]
          : ["ssl_enable=NO"]),
        "",
      ].join("\n"),
    );
  await writeVsftpdConfig();
  let server: Deno.ChildProcess | null = null;
  const start = async () => {
    server = null;
    const child = new Deno.Command("/usr/sbin/vsftpd", {
      args: [config],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPort(child, port, dir);
    server = child;
  };
  const kill = async () => {
    if (server === null) return;
    // Each FTP session is a process of its own session: kill the whole tree.
    await killTree(server.pid);
    await server.status;
    server = null;
  };
  const killSessions = async () => {
    if (server === null) return;
    const pid = (server as Deno.ChildProcess).pid;
    const children = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`);
    for (const child of children.trim().split(/\s+/).filter(Boolean)) {
      try {
        Deno.kill(Number(child), "SIGKILL");
      } catch { /* already gone */ }
    }
  };
  // The free port can be taken by another test before vsftpd binds it: then another port.
  for (let tries = 1;; tries++) {
    try {
      await start();
      break;
    } catch (error) {
      if (!(error instanceof VsftpdNotListening) || tries === 3) throw error;
      port = freePort();
      await writeVsftpdConfig();
    }
  }
  const remoteDirs: string[] = [];
  return {
    port,
    uid,
    gid,
    dir,
    certFile,
    passwordFile,
    async makeRemoteDir(prefix = "itx-ftpdst-") {
      const path = await Deno.makeTempDir({ prefix });
      await Deno.chown(path, uid, gid);
      remoteDirs.push(path);
      return path;
    },
    async logins() {
      const log = await Deno.readTextFile(join(dir, "vsftpd.log")).catch(() => "");
      return log.split("\n").filter((line) => line.includes("OK LOGIN")).length;
    },
    async commands() {
      const log = await Deno.readTextFile(join(dir, "vsftpd.log")).catch(() => "");
      const commands: string[] = [];
      for (const line of log.split("\n")) {
        const match = /FTP command: Client "[^"]*", "(.*)"$/.exec(line);
        if (match !== null) commands.push(match[1]);
      }
      return commands;
    },
    configKeys() {
      return {
        transfer_method: "ftp",
        remote_host: "127.0.0.1",
        remote_user: FTP_USER,
        ftp_port: port,
        ftp_tls: tls ? "required" : "off",
        ftp_password_file: passwordFile,
        ftp_ca_file: certFile,
      };
    },
    job(overrides) {
      return transportTestJob("ftp-test", {
        transfer_method: "ftp",
        remote_host: "127.0.0.1",
        remote_user: FTP_USER,
        remote_base_path: "/nonexistent-base",
        verify_transfer: "checksum",
        transfer_timeout_seconds: 30,
        ftp_tls: tls ? "required" : "off",
        ftp_port: port,
        ftp_password_file: passwordFile,
        ftp_ca_file: certFile,
      }, overrides);
    },
    kill,
    killSessions,
    restart: start,
    async stop() {
      await kill();
      for (const path of [...remoteDirs, dir]) {
        await Deno.remove(path, { recursive: true }).catch(() => {});
      }
    },
  };
}

/**
 * Run `body` with a fresh vsftpd and a temporary folder named after `prefix`; the server is
 * stopped and the folder removed after.
 */
export async function withVsftpdAndRoot(
  options: VsftpdOptions,
  prefix: string,
  body: (setup: { server: TestVsftpd; root: string }) => Promise<void>,
): Promise<void> {
  const server = await startVsftpd(options);
  const root = await Deno.makeTempDir({ prefix });
  try {
    await body({ server, root });
  } finally {
    await server.stop();
    await Deno.remove(root, { recursive: true });
  }
}

/**
 * A config in `root` sending a watch folder there (made) to a new folder `dest` on `server`, or
 * to `dest/below` when `below` is given (not made: `base`); short stability window, UTC night
 * folders, ledger in `root`, no log file. `values` are added to the config and win.
 */
export async function ftpDaemonSandbox(
  server: TestVsftpd,
  root: string,
  values: Record<string, unknown> = {},
  below?: string,
): Promise<{ dest: string; base: string; watch: string; config: string }> {
  const dest = await server.makeRemoteDir();
  const base = below === undefined ? dest : `${dest}/${below}`;
  const watch = join(root, "watch");
  await Deno.mkdir(watch);
  const config = join(root, "config.yaml");
  await writeConfig(config, {
    watch_path: watch,
    remote_base_path: base,
    ...server.configKeys(),
    stability_window_seconds: 0.2,
    night_timezone: "UTC",
    state_dir: join(root, "state"),
    log_file: "",
    ...values,
  });
  return { dest, base, watch, config };
}
