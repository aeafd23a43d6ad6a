/**
 * The machine and tool versions for the report header, and the key exchange
 * and cipher ssh actually negotiates with the benchmark's server.
 *
 * @module
 */
import type { TestSshd } from "../tests/helpers/sshd.ts";
import type { MachineInfo } from "./report.ts";
import { BIG_FILE_CIPHER, commandText, rawSshOptions } from "./setup.ts";

/**
 * CPU time (ms, all cores together) the machine has spent busy since boot,
 * from the first line of `/proc/stat` (everything but idle and iowait).
 */
export function machineBusyMs(): number {
  const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1);
  const ticks = fields.slice(0, 8).map(Number);
  const busy = ticks.reduce((sum, t) => sum + t, 0) - ticks[3] - ticks[4];
  return (busy / 100) * 1000; // USER_HZ is 100 on Linux
}

/** The current load average as `1.25, 2.26, 1.25`. */
export function loadAverage(): string {
  return Deno.loadavg().map((v) => v.toFixed(2)).join(", ");
}

/** `kex …, cipher …` as negotiated by `ssh -v` with `extra` options. */
async function negotiated(sshd: TestSshd, extra: string[]): Promise<string> {
  const text = await commandText([
    "ssh",
    "-v",
    "-p",
    String(sshd.port),
    ...rawSshOptions(sshd, extra),
    "--",
    `${sshd.user}@127.0.0.1`,
    "true",
  ]);
  const kex = /kex: algorithm: (\S+)/.exec(text)?.[1] ?? "?";
  const cipher = /kex: client->server cipher: (\S+)/.exec(text)?.[1] ?? "?";
  return `kex ${kex}, cipher ${cipher}`;
}

/** The commit of the repository at `repo`, and the uncommitted program files if any. */
async function codeVersion(repo: string): Promise<string> {
  const head = (await commandText(["git", "-C", repo, "log", "-1", "--format=%h %s"])).trim();
  const dirty = (await commandText([
    "git",
    "-C",
    repo,
    "status",
    "--porcelain",
    "--",
    "src",
    "main.ts",
    "deno.json",
  ])).split("\n").map((line) => line.slice(3).trim()).filter((path) => path !== "");
  const changes = dirty.length === 0 ? "" : `, plus uncommitted changes to ${dirty.join(", ")}`;
  return `commit ${head || "unknown"}${changes}`;
}

/** Describe this machine, its tools and the SSH algorithms in use. */
export async function describeMachine(sshd: TestSshd, repo: string): Promise<MachineInfo> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? Deno.build.arch;
  const memoryBytes = Deno.systemMemoryInfo().total;
  const defaults = await negotiated(sshd, []);
  const big = await negotiated(sshd, [`Ciphers=${BIG_FILE_CIPHER}`]);
  return {
    date: new Date().toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"),
    cpu,
    cores: navigator.hardwareConcurrency,
    memory: `${(memoryBytes / 2 ** 30).toFixed(0)} GiB RAM`,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    ssh: (await commandText(["ssh", "-V"])).trim(),
    rsync: (await commandText(["rsync", "--version"])).split("\n")[0].replace(/\s+/g, " ").trim(),
    cipher: `default ${defaults} (burst, latency); big file ${big}; host key ed25519, ` +
      "login user `itx-test` on 127.0.0.1",
    loadAtStart: loadAverage(),
    code: await codeVersion(repo),
  };
}
