/**
 * The shared SSH connection is replaced, without a restart, when its master
 * hangs (found before a call, or alongside one), when its socket is left behind, and when the connection stops
 * getting answers from the server; against a real OpenSSH server on loopback.
 * A transport that closes leaves no master behind, also one a call under way
 * at its close would open, and a call after its close opens none (nor a socket folder).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createTransport,
  type TransferItem,
  type Transport,
} from "../../../src/transfer/transport.ts";
import { randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { startSshd, type TestSshd } from "../../helpers/sshd.ts";
import { startCuttingProxy } from "../../helpers/net.ts";
import { SERVED_RECENTLY_MS } from "../../../src/transfer/ssh/master.ts";
import { cleanUpAfterCrash } from "../../../src/process/crash_cleanup.ts";
import { ScpTransport } from "../../../src/transfer/ssh/scp.ts";

/** Write `data` as a source file and return the item sending it to `destination`. */
async function makeItem(root: string, destination: string, data: Uint8Array) {
  const source = join(root, ...destination.split("/"));
  await Deno.mkdir(join(source, ".."), { recursive: true });
  await Deno.writeFile(source, data);
  const info = await Deno.stat(source);
  return { source, destination, size: info.size, mtimeMs: info.mtime!.getTime() };
}

/** Send `items` and assert each arrived with the same bytes. */
async function sendAndCheck(transport: Transport, dst: string, items: TransferItem[]) {
  const outcomes = await transport.send(items, new AbortController().signal);
  for (const outcome of outcomes) {
    assert.equal(outcome.error, null, `${outcome.item.destination}: ${outcome.error?.message}`);
    const copy = join(dst, ...outcome.item.destination.split("/"));
    assert.equal(await sha256OfFile(copy), await sha256OfFile(outcome.item.source));
  }
}

/** The one control socket in `runtime`. */
function controlSocket(runtime: string): string {
  const sockets = [...Deno.readDirSync(runtime)].filter((e) => e.name.startsWith("cm-"));
  assert.equal(sockets.length, 1, "one control socket");
  return join(runtime, sockets[0].name);
}

/** Process ids whose command line mentions `text`, zombies left out. */
async function processesMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    if (cmdline.includes(text) && !/^\d+ \(.*\) Z/.test(stat)) pids.push(Number(entry.name));
  }
  return pids;
}

/** The master of `controlPath` (its process title names the socket). */
async function masterOf(controlPath: string): Promise<number> {
  const pids = await processesMentioning(`${controlPath} [mux]`);
  assert.equal(pids.length, 1, `one master for ${controlPath}: ${pids}`);
  return pids[0];
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

async function withTransport(
  sshd: TestSshd,
  method: "scp" | "rsync",
  transferTimeoutS: number,
  fn: (ctx: { src: string; dst: string; runtime: string; transport: Transport }) => Promise<void>,
) {
  const src = await Deno.makeTempDir({ prefix: "itx-src-" });
  const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
  const dst = await sshd.makeRemoteDir();
  const transport = createTransport(
    sshd.job({
      transfer_method: method,
      remote_base_path: dst,
      transfer_timeout_seconds: transferTimeoutS,
    }),
    runtime,
  );
  try {
    await fn({ src, dst, runtime, transport });
  } finally {
    await transport.close();
    await Deno.remove(src, { recursive: true });
    await Deno.remove(runtime, { recursive: true });
  }
}

/**
 * Run `fn` with an scp transport whose runtime folder (in `base`) is too long for a socket: its
 * sockets go to a private folder made in `temp`, the temporary folder it is given.
 * Any ssh left that names `base` is killed after.
 */
async function withOwnSocketFolder(
  fn: (
    ctx: { base: string; temp: string; runtime: string; dst: string; transport: Transport },
  ) => Promise<void>,
) {
  const sshd = await startSshd();
  const base = await Deno.makeTempDir({ prefix: "itx-rt-" });
  const runtime = join(base, "r".repeat(70));
  const temp = join(base, "tmp");
  await Deno.mkdir(temp);
  const dst = await sshd.makeRemoteDir();
  try {
    // Not by setting TMPDIR: the environment is the whole test process's, other files' too.
    const job = sshd.job({ transfer_method: "scp", remote_base_path: dst });
    const transport = new ScpTransport(job, runtime, null, false, temp);
    await fn({ base, temp, runtime, dst, transport });
  } finally {
    for (const pid of await processesMentioning(base)) Deno.kill(pid, "SIGKILL");
    await Deno.remove(base, { recursive: true });
    await sshd.stop();
  }
}

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`${method}: the shared connection is replaced when it fails`, async (t) => {
    const sshd = await startSshd();
    try {
      await t.step("a master that hangs while idle is killed and a new one opened", async () => {
        await withTransport(sshd, method, 120, async ({ src, dst, runtime, transport }) => {
          await sendAndCheck(transport, dst, [await makeItem(src, "a/1.fits", randomBytes(1000))]);
          const socket = controlSocket(runtime);
          const hung = await masterOf(socket);
          // Long enough after its last call that it is asked before the next one.
          await new Promise((resolve) => setTimeout(resolve, SERVED_RECENTLY_MS + 500));
          Deno.kill(hung, "SIGSTOP");
          try {
            // Without replacing it, the call would fail at the transfer timeout (120 s).
            await sendAndCheck(transport, dst, [
              await makeItem(src, "a/2.fits", randomBytes(1000)),
            ]);
            assert.equal(alive(hung), false, "the hung master was killed");
            assert.notEqual(await masterOf(socket), hung);
          } finally {
            if (alive(hung)) Deno.kill(hung, "SIGKILL");
          }
        });
      });

      await t.step(
        "a master that hangs right after a call is found alongside the next one, killed, and that call goes through a connection of its own",
        async () => {
          await withTransport(sshd, method, 300, async ({ src, dst, runtime, transport }) => {
            await sendAndCheck(transport, dst, [
              await makeItem(src, "h/1.fits", randomBytes(1000)),
            ]);
            const socket = controlSocket(runtime);
            const hung = await masterOf(socket);
            Deno.kill(hung, "SIGSTOP");
            try {
              // The call waits on the hung master until the check alongside it kills the master
              // (ssh then opens a connection of its own); without that, it would fail at the
              // transfer timeout (300 s).
              await sendAndCheck(transport, dst, [
                await makeItem(src, "h/2.fits", randomBytes(1000)),
              ]);
              assert.equal(alive(hung), false, "the hung master was killed");
              await sendAndCheck(transport, dst, [
                await makeItem(src, "h/3.fits", randomBytes(1000)),
              ]);
              assert.notEqual(await masterOf(socket), hung);
            } finally {
              if (alive(hung)) Deno.kill(hung, "SIGKILL");
            }
          });
        },
      );

      await t.step("a socket left by a killed master is replaced", async () => {
        await withTransport(sshd, method, 120, async ({ src, dst, runtime, transport }) => {
          await sendAndCheck(transport, dst, [await makeItem(src, "b/1.fits", randomBytes(1000))]);
          const socket = controlSocket(runtime);
          const old = await masterOf(socket);
          Deno.kill(old, "SIGKILL");
          await waitFor(() => !alive(old), 30_000, "the master gone");
          assert.ok((await Deno.lstat(socket)).isSocket, "the dead master's socket is left");
          await sendAndCheck(transport, dst, [await makeItem(src, "b/2.fits", randomBytes(1000))]);
          assert.notEqual(await masterOf(socket), old);
        });
      });

      await t.step(
        "a connection the server stopped answering is replaced after a failed call",
        async () => {
          // A transfer timeout of 8 s: the call through the frozen connection ends with it, and
          // a new connection over loopback has room to open on a busy machine.
          await withTransport(sshd, method, 8, async ({ src, dst, runtime, transport }) => {
            const first = await makeItem(src, "c/1.fits", randomBytes(1000));
            await sendAndCheck(transport, dst, [first]);
            const socket = controlSocket(runtime);
            const old = await masterOf(socket);
            // Freeze the server's side of this connection (it keeps listening for new ones).
            const frozen = await sshd.sessionPids();
            assert.ok(frozen.length > 0, "the server serves the connection");
            for (const pid of frozen) Deno.kill(pid, "SIGSTOP");
            try {
              const second = await makeItem(src, "c/2.fits", randomBytes(1000));
              const failed = await transport.send([second], new AbortController().signal);
              assert.equal(failed[0].error?.kind, "retry", failed[0].error?.message);
              assert.ok(alive(old), "the master has not noticed yet (keep-alives take ~60 s)");
              // Through the frozen connection, the call would fail at the transfer timeout.
              await sendAndCheck(transport, dst, [second]);
              assert.notEqual(await masterOf(socket), old, "a new connection carried it");
            } finally {
              for (const pid of frozen) Deno.kill(pid, "SIGKILL");
            }
          });
        },
      );
    } finally {
      await sshd.stop();
    }
  });
}

Deno.test("ssh: a closed transport leaves no master, also none that a call under way at the close or made after it would open", async () => {
  const sshd = await startSshd();
  // The server answers once the test says so: the call under way at the close is still opening
  // the shared connection (no socket yet, nothing for the close to end).
  const proxy = startCuttingProxy(sshd.port, { held: true });
  const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
  const knownHosts = join(runtime, "known_hosts");
  const line = (await Deno.readTextFile(sshd.knownHosts)).replace(
    `]:${sshd.port} `,
    `]:${proxy.port} `,
  );
  await Deno.writeTextFile(knownHosts, line);
  const dst = await sshd.makeRemoteDir();
  const job = sshd.job({
    transfer_method: "scp",
    remote_base_path: dst,
    ssh_port: proxy.port,
    ssh_options: [`UserKnownHostsFile=${knownHosts}`, "GlobalKnownHostsFile=/dev/null"],
  });
  // Every ssh of these transports names the runtime folder: the calls by their ControlPath
  // option, the master by its process title.
  const left = () => processesMentioning(runtime);
  try {
    const transport = createTransport(job, runtime);
    // As the free-space check of a job being stopped: its own signal is not aborted.
    // Handled at once: it fails during the close, before the test would get to it.
    const asking = transport.diskSpace!(new AbortController().signal).catch(() => {});
    await waitFor(async () => (await left()).length > 0, 30_000, "the call under way");
    await transport.close();
    proxy.release();
    await asking;
    assert.deepEqual(await left(), [], "no ssh left: the call was ended, no master opened");
    // A call after the close (a warm-up the watch asks for as the job stops) opens none either.
    await assert.rejects(transport.diskSpace!(new AbortController().signal), /closed/);
    assert.deepEqual(await left(), [], "no ssh left after a call once closed");

    // A transport that sent a file: its master ends with the close.
    const sending = createTransport(job, runtime);
    const src = join(runtime, "src");
    await sendAndCheck(sending, dst, [await makeItem(src, "a/1.fits", randomBytes(1000))]);
    const master = await masterOf(controlSocket(runtime));
    await sending.close();
    await waitFor(() => !alive(master), 30_000, "the master ended");
  } finally {
    for (const pid of await left()) Deno.kill(pid, "SIGKILL");
    await proxy.stop();
    await Deno.remove(runtime, { recursive: true });
    await sshd.stop();
  }
});

Deno.test("ssh: a closed transport whose sockets live in a folder of their own (a runtime path too long) makes no new folder for a call after its close", () =>
  withOwnSocketFolder(async ({ base, temp, dst, transport }) => {
    const src = join(base, "src");
    await sendAndCheck(transport, dst, [await makeItem(src, "a/1.fits", randomBytes(1000))]);
    const own = [...Deno.readDirSync(temp)].map((e) => e.name);
    assert.equal(own.length, 1, `the socket folder: ${own}`);
    assert.match(own[0], /^itx-/);
    await transport.close();
    assert.deepEqual([...Deno.readDirSync(temp)], [], "the socket folder removed by the close");
    // A call after the close (a warm-up the watch asks for as the job stops) is refused...
    await assert.rejects(transport.diskSpace!(new AbortController().signal), /closed/);
    // ... before it makes a socket folder no one would remove.
    assert.deepEqual([...Deno.readDirSync(temp)].map((e) => e.name), [], "no folder made");
  }));

Deno.test("ssh: once a crash ended the shared connection, a call still made before the exit is refused: it opens no master that outlives the program", async () => {
  const sshd = await startSshd();
  const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
  const dst = await sshd.makeRemoteDir();
  const transport = createTransport(
    sshd.job({ transfer_method: "scp", remote_base_path: dst }),
    runtime,
  );
  try {
    const src = join(runtime, "src");
    await sendAndCheck(transport, dst, [await makeItem(src, "a/1.fits", randomBytes(1000))]);
    const master = await masterOf(controlSocket(runtime));
    await cleanUpAfterCrash(8_000);
    // Asked to exit (or killed), it ends as soon as the system has it gone.
    await waitFor(() => !alive(master), 30_000, "the master ended by the crash's cleanup");
    // The program goes on until it exits (a batch under way, a retry, the next file's warm-up).
    await assert.rejects(transport.diskSpace!(new AbortController().signal), /closed/);
    assert.deepEqual(await processesMentioning(runtime), [], "no ssh left, no master opened");
  } finally {
    await transport.close();
    for (const pid of await processesMentioning(runtime)) Deno.kill(pid, "SIGKILL");
    await Deno.remove(runtime, { recursive: true });
    await sshd.stop();
  }
});

Deno.test("ssh: a transport closed before any call (sockets in a folder of their own) makes no socket folder for a call after its close", () =>
  withOwnSocketFolder(async ({ temp, runtime, transport }) => {
    // A job replaced at a reload before it called its destination, then its warm-up.
    await transport.close();
    await assert.rejects(transport.diskSpace!(new AbortController().signal), /closed/);
    assert.deepEqual([...Deno.readDirSync(temp)].map((e) => e.name), [], "no socket folder made");
    await assert.rejects(Deno.stat(runtime), Deno.errors.NotFound, "nor the runtime folder");
  }));

Deno.test("ssh: first calls made at once (sockets in a folder of their own) share one socket folder, which the close removes", () =>
  withOwnSocketFolder(async ({ base, temp, dst, transport }) => {
    // As a job's start: its free-space check and its first batch, neither waiting for the other.
    const never = new AbortController().signal;
    await Promise.all([transport.diskSpace!(never), transport.diskSpace!(never)]);
    const src = join(base, "src");
    await sendAndCheck(transport, dst, [await makeItem(src, "a/1.fits", randomBytes(1000))]);
    assert.equal([...Deno.readDirSync(temp)].length, 1, "one socket folder");
    await transport.close();
    assert.deepEqual([...Deno.readDirSync(temp)].map((e) => e.name), [], "none left");
    assert.deepEqual(await processesMentioning(temp), [], "no master left");
  }));
