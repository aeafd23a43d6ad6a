/** Classifying ssh/scp/rsync failures, on stderr text captured from real runs (OpenSSH 9.2, rsync 3.x). */
import assert from "node:assert/strict";
import { aboveRefusedReason, baseRefusedReason } from "../../../src/transfer/base_folder.ts";
import {
  classifyFailure,
  classifyText,
  ExplainedFailure,
  type FailureContext,
  RemoteFailure,
} from "../../../src/transfer/classify.ts";
import {
  CommandError,
  failureScope,
  isDestinationFull,
  lastLine,
  ownFolderRefused,
  TransferError,
} from "../../../src/errors.ts";
import { noCommandsReason } from "../../../src/transfer/no_commands.ts";
import { runHere } from "../../../src/process/run_here.ts";
import { noSftpReason } from "../../../src/transfer/ssh/sftp_subsystem.ts";

const context: FailureContext = { host: "freya", destination: "obs@freya", port: 2222 };

const failure = (argv0: string, code: number | null, stderr: string, timedOut = false) =>
  new CommandError("failed", {
    argv: [argv0, "x"],
    code,
    signal: code === null ? "SIGKILL" : null,
    timedOut,
    stderr,
    durationMs: 1500,
  });

const CHANGED_KEY = `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:FmJu5hC/AXUlJOIG3eYOp4Jk2z5bJ45+ycHvtNcf5Sc.
Please contact your system administrator.
Add correct host key in /root/.ssh/known_hosts to get rid of this message.
Offending ED25519 key in /root/.ssh/known_hosts:1
  remove with:
  ssh-keygen -f "/root/.ssh/known_hosts" -R "[127.0.0.1]:42619"
Host key for [127.0.0.1]:42619 has changed and you have requested strict checking.
Host key verification failed.`;

Deno.test("host key problems are fatal and say how to accept or replace the key", () => {
  const unknown = classifyText("Host key verification failed.", context, 255, "ssh");
  assert.equal(unknown.kind, "fatal");
  assert.match(unknown.reason, /run "ssh -p 2222 obs@freya" once to accept the host key/);
  assert.match(unknown.reason, /ssh-keyscan -p 2222 freya >> ~\/\.ssh\/known_hosts/);

  const strict = classifyText(
    "No ED25519 host key is known for [127.0.0.1]:42619 and you have requested strict checking.\n" +
      "Host key verification failed.",
    context,
    255,
  );
  assert.equal(strict.kind, "fatal");
  assert.match(strict.reason, /is not known/);

  const changed = classifyText(CHANGED_KEY, context, 255);
  assert.equal(changed.kind, "fatal");
  assert.match(changed.reason, /has CHANGED/);
  assert.match(changed.reason, /ssh-keygen -R '\[freya\]:2222'/);
  // A known-hosts file of ssh_options' own is the one to edit.
  const ownFile = classifyText(CHANGED_KEY, {
    ...context,
    options: ["StrictHostKeyChecking=yes", "UserKnownHostsFile=/srv/itx/known hosts"],
  }, 255);
  assert.match(ownFile.reason, /ssh-keygen -f \/srv\/itx\/known -R '\[freya\]:2222'/);
  // Options that refuse to ask are overruled in the command that accepts the key.
  assert.match(
    ownFile.reason,
    /run "ssh -o StrictHostKeyChecking=ask -p 2222 -o StrictHostKeyChecking=yes .* obs@freya" once to accept the new one/,
  );
  const batch = classifyText("Host key verification failed.", {
    ...context,
    options: ["BatchMode=yes"],
  }, 255);
  assert.match(batch.reason, /run "ssh -o BatchMode=no -p 2222 -o BatchMode=yes obs@freya" once/);
  const ownUnknown = classifyText("Host key verification failed.", {
    ...context,
    options: ["UserKnownHostsFile /srv/itx/known_hosts"],
  }, 255);
  assert.match(ownUnknown.reason, />> \/srv\/itx\/known_hosts/);

  const viaRsync = classifyText(
    "Host key verification failed.\n" +
      "rsync: connection unexpectedly closed (0 bytes received so far) [sender]\n" +
      "rsync error: error in rsync protocol data stream (code 12) at io.c(285) [sender=3.5.0]",
    context,
    12,
    "rsync",
  );
  assert.equal(viaRsync.kind, "fatal");
});

Deno.test("refused authentication is fatal and points at keys and BatchMode", () => {
  for (
    const text of [
      "itx-test@127.0.0.1: Permission denied (publickey).",
      "itx-test@127.0.0.1: Permission denied (publickey).\n/usr/bin/scp: Connection closed",
      "Received disconnect from 10.0.0.1 port 22:2: Too many authentication failures",
    ]
  ) {
    const result = classifyText(text, context, 255);
    assert.equal(result.kind, "fatal", text);
    assert.match(result.reason, /authentication was refused for obs@freya/);
    assert.match(result.reason, /authorized_keys/);
  }
});

Deno.test("refused authentication with a key ssh cannot read names the key, not the server", () => {
  const warning = "Warning: Identity file /home/obs/.ssh/id_ed25519 not accessible: " +
    "No such file or directory.";
  for (
    const text of [
      `${warning}\nobs@freya: Permission denied (publickey).`,
      `${warning}\nobs@freya: Permission denied (publickey).\n/usr/bin/scp: Connection closed`,
    ]
  ) {
    const result = classifyText(text, context, 255);
    assert.equal(result.kind, "fatal", text);
    assert.equal(
      result.reason,
      "authentication was refused for obs@freya: ssh_identity_file " +
        "/home/obs/.ssh/id_ed25519 cannot be read (No such file or directory); put the key " +
        "back or fix the path",
    );
  }
  // The warning alone, with a connection that failed otherwise, is not taken for a refusal.
  const refused = classifyText(
    `${warning}\nssh: connect to host freya port 2222: Connection refused`,
    context,
    255,
  );
  assert.equal(refused.kind, "retry");
});

Deno.test("network failures are retryable", () => {
  for (
    const [text, code, tool] of [
      ["ssh: connect to host 127.0.0.1 port 1: Connection refused", 255, "ssh"],
      [
        "Connection timed out during banner exchange\nConnection to 10.255.255.1 port 22 timed out",
        255,
        "ssh",
      ],
      ["client_loop: send disconnect: Broken pipe", 255, "ssh"],
      ["Connection reset by 10.0.0.1 port 22", 255, "scp"],
      [
        "ssh: connect to host 127.0.0.1 port 1: Connection refused\n/usr/bin/scp: Connection closed",
        255,
        "scp",
      ],
      ["rsync: connection unexpectedly closed (0 bytes received so far) [sender]", 12, "rsync"],
      ["rsync error: timeout in data send/receive (code 30)", 30, "rsync"],
      ["", 255, "ssh"],
      ["rsync error: error in socket IO (code 10)", 10, "rsync"],
    ] as const
  ) {
    const result = classifyText(text, context, code, tool);
    assert.equal(result.kind, "retry", text);
  }
  assert.match(
    classifyText("ssh: connect to host freya port 2222: Connection refused", context, 255).reason,
    /check that the host is up and reachable and that sshd listens on port 2222/,
  );
  // A connection cut during a call is said as such (the job's connection still), not as one that
  // could not be made; one cut while it was being made is the latter.
  for (
    const text of [
      "Connection to freya closed by remote host.",
      "client_loop: send disconnect: Broken pipe",
      "Read from remote host freya: Connection reset by peer",
    ]
  ) {
    const { kind, reason } = classifyText(text, context, 255, "ssh");
    assert.equal(kind, "retry", text);
    assert.match(reason, /^the connection to freya failed: it was cut during a call/, text);
    assert.equal(
      failureScope(new TransferError(`Cannot send a.fits: ${reason}`, kind)),
      "connection",
    );
  }
  for (
    const text of [
      "kex_exchange_identification: read: Connection reset by peer",
      "ssh: connect to host freya port 22: Connection timed out\nlost connection",
    ]
  ) {
    assert.match(classifyText(text, context, 255, "ssh").reason, /sshd listens on port/, text);
  }
  // A port given in ssh_options is the one named (and scanned for a host key).
  const byOption = { host: "freya", destination: "obs@freya", port: null, options: ["Port=18623"] };
  assert.match(
    classifyText("ssh: connect to host freya port 18623: Connection refused", byOption, 255).reason,
    /sshd listens on port 18623$/,
  );
  assert.match(
    classifyText("Host key verification failed.", byOption, 255).reason,
    /ssh-keyscan -p 18623 freya/,
  );
  // scp's words for a connection that dropped mid-file (exit 1): the connection, not the file,
  // so the job waits for the host instead of the file using up a retry.
  const dropped = classifyText("scp: lost connection", context, 1, "scp");
  assert.match(dropped.reason, /the connection to \S+ failed/);
  assert.equal(failureScope(new TransferError(dropped.reason, dropped.kind)), "connection");
});

Deno.test("remote permission, read-only and full disks are retry-later and say so", () => {
  const cases: [string, RegExp][] = [
    ['/usr/bin/scp: dest open "/tmp/itx-ro/x": Permission denied', /may not write there/],
    ["mkdir: cannot create directory '/tmp/itx-ro/a': Permission denied", /may not write there/],
    [
      'rsync: [receiver] mkstemp "/tmp/itx-ro/.x.l3fG1a" failed: Permission denied (13)',
      /may not write/,
    ],
    ["mv: cannot move 'a' to 'b': Read-only file system", /read-only/],
    ['/usr/bin/scp: dest write "/data/x": No space left on device', /is full/],
    ['rsync: write failed on "/data/x": Disk quota exceeded (122)', /quota on freya is used up/],
    // tar (GNU 1.34, a tmpfs filling up) says a write cut short without the system's words.
    [
      "/usr/bin/tar: f4.fits: Wrote only 4096 of 8192 bytes /usr/bin/tar: Exiting with failure " +
      "status due to previous errors",
      /is full/,
    ],
    ["/usr/bin/tar: f5.fits: Cannot open: No space left on device", /is full/],
    ["cat: write error: No space left on device", /is full/],
  ];
  for (const [text, reason] of cases) {
    const result = classifyText(text, context, 1);
    assert.equal(result.kind, "retry-later", text);
    assert.match(result.reason, reason);
  }
});

Deno.test("what a remote tool said in a script's result line is classified by its words: a full disk pauses the job", () => {
  const said = "/usr/bin/tar: f4.fits: Wrote only 4096 of 8192 bytes";
  const full = classifyFailure(new RemoteFailure(said), "send /a/f4.fits to freya", context);
  assert.equal(full.kind, "retry-later");
  assert.ok(isDestinationFull(full), full.message);
  // One sentence: what is full and what to do; tar's words add nothing to it.
  assert.equal(
    full.message,
    "Cannot send /a/f4.fits to freya: the destination disk on freya is full (no space left on " +
      "device): free some space on it, or change remote_base_path",
  );
  // Words no rule knows: said as they are, and tried again.
  const other = classifyFailure(new RemoteFailure("tar: odd"), "send /a/x to freya", context);
  assert.equal(other.kind, "retry");
  assert.equal(other.message, "Cannot send /a/x to freya: tar: odd");
});

Deno.test("a full disk or a used-up quota is said in one sentence with what to do, without the tool's words", () => {
  const scp = classifyFailure(
    failure("scp", 1, 'scp: dest write "/data/2024/x.fits": No space left on device\n'),
    "send /a/x.fits to obs@freya:/data/2024/x.fits",
    context,
  );
  assert.equal(scp.kind, "retry-later");
  assert.ok(isDestinationFull(scp), scp.message);
  assert.equal(
    scp.message,
    "Cannot send /a/x.fits to obs@freya:/data/2024/x.fits: the destination disk on freya is " +
      "full (no space left on device): free some space on it, or change remote_base_path",
  );
  const quota = classifyFailure(
    failure("rsync", 11, 'rsync: write failed on "/data/2024/x.fits": Disk quota exceeded (122)\n'),
    "send /a/x.fits to obs@freya:/data/2024/x.fits",
    context,
  );
  assert.ok(isDestinationFull(quota), quota.message);
  assert.equal(
    quota.message,
    "Cannot send /a/x.fits to obs@freya:/data/2024/x.fits: the remote user's disk quota on " +
      "freya is used up (quota exceeded): free some of its space there, have the quota raised, " +
      "or change remote_base_path",
  );
  // Without a config file: the folder is given with --to.
  const fromTo = classifyText("cat: write error: No space left on device", {
    ...context,
    fromTo: true,
  });
  assert.match(fromTo.reason, /free some space on it, or give --to another folder$/);
  // Other reasons keep the tool's words: they say what the reason does not.
  const denied = classifyFailure(
    failure("scp", 1, 'scp: dest open "/data/x": Permission denied\n'),
    "send /a/x",
    context,
  );
  assert.match(denied.message, /\(scp: dest open "\/data\/x": Permission denied\)$/);
});

Deno.test("bad options and a missing remote rsync are fatal", () => {
  assert.equal(
    classifyText("command-line: line 0: Bad configuration option: foo", context, 255).kind,
    "fatal",
  );
  assert.equal(
    classifyText(
      "rsync: --no-such-opt: unknown option\nrsync error: syntax or usage error (code 1)",
      context,
      1,
      "rsync",
    ).kind,
    "fatal",
  );
  const missing = classifyText(
    "bash: line 1: rsync: command not found\n" +
      "rsync: connection unexpectedly closed (0 bytes received so far) [sender]",
    context,
    12,
    "rsync",
  );
  assert.equal(missing.kind, "fatal");
  assert.match(missing.reason, /rsync is not installed on freya .*--rsync-path=/);
});

Deno.test("a login shell that prints text is fatal for the whole destination and says what to change there", () => {
  // rsync 3.x, and OpenSSH 9.2's scp through an sftp-server the server starts with the shell.
  const cases: [string, number, string][] = [
    [
      "rsync",
      2,
      "protocol version mismatch -- is your shell clean?\n" +
      "(see the rsync manpage for an explanation)\n" +
      "rsync error: protocol incompatibility (code 2) at compat.c(625) [sender=3.5.0]",
    ],
    [
      "scp",
      255,
      "scp: Received message too long 1466264675\n" +
      "scp: Ensure the remote shell produces no output for non-interactive sessions.",
    ],
  ];
  for (const [tool, code, stderr] of cases) {
    const error = classifyFailure(failure(tool, code, stderr), "send a.fits", context);
    assert.equal(error.kind, "fatal", tool);
    assert.match(
      error.message,
      /^Cannot send a\.fits: the login shell of obs@freya prints text for non-interactive sessions .*~\/\.bashrc.*\[\[ \$- == \*i\* \]\] \|\| return.*"ssh -p 2222 obs@freya true" prints nothing/,
    );
    assert.doesNotMatch(error.message, /check that the host is up/);
    assert.equal(failureScope(error), "connection", "said once, not per file");
  }
});

Deno.test("classifyFailure turns a CommandError into a TransferError with cause and detail", () => {
  const error = failure("/usr/bin/scp", 1, '/usr/bin/scp: dest open "/d/x": Permission denied');
  const result = classifyFailure(error, "send a.fits to obs@freya:/d/a.fits", context);
  assert.ok(result instanceof TransferError);
  assert.equal(result.kind, "retry-later");
  assert.equal(result.cause, error);
  assert.match(result.message, /^Cannot send a\.fits to obs@freya:\/d\/a\.fits: /);
  assert.match(result.message, /\(scp: \/usr\/bin\/scp: dest open/);
  // A program that names itself is not named twice.
  const named = failure("ssh", 255, "ssh: Could not resolve hostname freya: Name or service");
  const resolved = classifyFailure(named, "send c", context).message;
  assert.match(resolved, /\(ssh: Could not resolve hostname freya/);
  assert.doesNotMatch(resolved, /ssh: ssh:/);

  const timedOut = classifyFailure(failure("rsync", null, "", true), "send b", context);
  assert.equal(timedOut.kind, "retry");
  assert.match(timedOut.message, /timed out after 2 s \(transfer_timeout_seconds\)/);
});

Deno.test("the ssh command a message suggests carries the configured port, identity file and options", () => {
  const full: FailureContext = {
    ...context,
    identityFile: "/home/obs/.ssh/id archive",
    options: ["Ciphers=aes128-gcm@openssh.com", "ProxyJump=gate"],
  };
  const refused = classifyText("obs@freya: Permission denied (publickey).", full, 255, "ssh");
  assert.ok(
    refused.reason.includes(
      `"ssh -o BatchMode=yes -p 2222 -i '/home/obs/.ssh/id archive' ` +
        `-o Ciphers=aes128-gcm@openssh.com -o ProxyJump=gate obs@freya true"`,
    ),
    refused.reason,
  );
  const unknown = classifyText("Host key verification failed.", full, 255, "ssh");
  assert.ok(
    unknown.reason.includes(
      `run "ssh -p 2222 -i '/home/obs/.ssh/id archive' -o Ciphers=aes128-gcm@openssh.com ` +
        `-o ProxyJump=gate obs@freya" once`,
    ),
    unknown.reason,
  );
});

Deno.test("a path the runtime guards fails for good, without the runtime's --allow-all advice", () => {
  // The runtime's words for an open under /dev without every permission (Deno 2.9).
  const refusal = new Deno.errors.NotCapable(
    'Requires all access to "/dev/shm/dest/20240315", run again with the --allow-all flag',
  );
  const result = classifyFailure(refusal, "make /dev/shm/dest/20240315", context);
  assert.equal(result.kind, "fatal");
  assert.match(result.message, /\/dev\/shm\/dest\/20240315 is under \/dev, \/proc or \/sys/);
  assert.match(result.message, /choose a folder elsewhere/);
  assert.doesNotMatch(result.message, /allow-all/);
  // Any other error keeps its words and is tried again.
  const other = classifyFailure(new Error("Connection reset"), "send a", context);
  assert.equal(other.kind, "retry");
  assert.match(other.message, /Connection reset/);
});

Deno.test("a RemoteCommand of the host's ~/.ssh/config entry is named, not taken for a lost connection", () => {
  // What OpenSSH 9.2 says (exit 255) when a RemoteCommand meets the command ssh is given.
  const result = classifyText(
    "Cannot execute command-line and remote command.\n",
    context,
    255,
    "ssh",
  );
  assert.equal(result.kind, "fatal");
  assert.match(
    result.reason,
    /^a RemoteCommand is set for freya \(in its Host entry of ~\/\.ssh\/config/,
  );
  assert.match(result.reason, /give remote_host a Host alias \(same HostName\) without it$/);
  assert.doesNotMatch(result.reason, /check that the host is up/);
});

Deno.test("a program killed from outside, or failing without a word, says so instead of 'the command failed'", async () => {
  // A real process killed by SIGKILL, as the out-of-memory killer or a `kill -9` of scp does.
  const killed = await runHere(["sh", "-c", 'kill -9 "$$"']).then(() => null, (error) => error);
  assert.ok(killed instanceof CommandError);
  const said = classifyFailure(killed, "send a.fits to obs@freya:/d/a.fits", context);
  assert.equal(said.kind, "retry");
  assert.equal(
    said.message,
    "Cannot send a.fits to obs@freya:/d/a.fits: sh was killed by SIGKILL, not by " +
      "image-transfer (the out-of-memory killer, or a kill of its process)",
  );
  // What a killed rsync's server says as it loses it is not taken for a lost connection.
  const rsync = await runHere([
    "sh",
    "-c",
    // What the server's rsync said when `kill -9` ended the rsync it served (rsync 3.x).
    'echo "rsync: connection unexpectedly closed (35 bytes received so far) [generator]" >&2; ' +
    'echo "rsync error: error in rsync protocol data stream (code 12) at io.c(285)" >&2; ' +
    'kill -9 "$$"',
  ]).then(() => null, (error) => error);
  assert.ok(rsync instanceof CommandError);
  const lost = classifyFailure(rsync, "send c.fits", context);
  assert.equal(lost.kind, "retry");
  assert.match(
    lost.message,
    /^Cannot send c\.fits: sh was killed by SIGKILL, not by image-transfer/,
  );
  const silent = await runHere(["sh", "-c", "exit 3"]).then(() => null, (error) => error);
  assert.ok(silent instanceof CommandError);
  assert.equal(
    classifyFailure(silent, "send b.fits", context).message,
    "Cannot send b.fits: sh ended with exit code 3",
  );
});

Deno.test("without a config file (--to), what to change is said of the options typed, never of a config key", () => {
  const quick: FailureContext = { ...context, fromTo: true };
  // A key named alone, not as the --set that gives it.
  const keys =
    /(?<!--set '?)\b(remote_base_path|remote_host|remote_user|ssh_options|rsync_options|ssh_identity_file|transfer_method|transfer_timeout_seconds)\b/;
  const said = (stderr: string) => classifyText(stderr, quick).reason;
  const cases: [string, RegExp][] = [
    ["Permission denied (publickey).", /check the user in --to and --set ssh_identity_file=… /],
    [
      "command-line: line 0: Bad configuration option: bogus",
      /check --set ssh_options=… and --set rsync_options=…$/,
    ],
    [
      "bash: line 1: rsync: command not found",
      /--set 'rsync_options=\["--rsync-path=\/path\/to\/rsync"\]', or use --method scp$/,
    ],
    [
      "mkdir: cannot create directory '/d/x': Read-only file system",
      /or give --to another folder$/,
    ],
    ['scp: dest open "/d/x": Permission denied', /or give --to another folder$/],
    ["ssh: Could not resolve hostname freya: Name", /check the host in --to /],
  ];
  for (const [stderr, words] of cases) {
    // Before: "check remote_user and ssh_identity_file", "check ssh_options and rsync_options in
    // the config", "rsync_options: [...] or use transfer_method: scp", "change remote_base_path".
    assert.match(said(stderr), words, stderr);
    assert.doesNotMatch(said(stderr), keys, stderr);
    // With a config file, the keys.
    assert.match(classifyText(stderr, context).reason, keys, stderr);
  }
  const refused = baseRefusedReason("freya", "/d", true);
  assert.match(refused, /or give --to another folder$/);
  assert.doesNotMatch(refused, keys);
  assert.match(baseRefusedReason("freya", "/d"), /or change remote_base_path$/);
  const timedOut = classifyFailure(failure("scp", null, "", true), "send b", quick).message;
  assert.match(timedOut, /timed out after 2 s \(--set transfer_timeout_seconds=…\)$/);
});

Deno.test("a source of this machine scp or rsync cannot read is the source's problem, not the destination's: a share gone is retried, a file it may not read needs a fix", () => {
  const source = `/mnt/share/big "2" $(x).fits`;
  const cases: Array<[string, number, string, TransferError["kind"], RegExp]> = [
    [
      "scp",
      255,
      `/usr/bin/scp: read local "${source}": Transport endpoint is not connected`,
      "retry",
      /cannot read the source file .*big "2" \$\(x\)\.fits: its file system does not answer \(Transport endpoint is not connected\); a share unmounted/,
    ],
    [
      "scp",
      1,
      `scp: open local "${source}": Permission denied`,
      "fatal",
      /cannot read the source file .*\(Permission denied\); fix its permissions/,
    ],
    [
      "rsync",
      23,
      `rsync: [sender] read errors mapping "${source}": Input/output error (5)\n` +
      `rsync: [sender] send_files failed to open "${source}": Input/output error (5)\n` +
      "rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]",
      "retry",
      /its file system does not answer \(Input\/output error\)/,
    ],
    [
      "rsync",
      23,
      `rsync: [sender] send_files failed to open "${source}": Permission denied (13)\n` +
      "rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]",
      "fatal",
      /cannot read the source file .*\(Permission denied\); fix its permissions/,
    ],
    [
      "rsync",
      23,
      `rsync: [sender] link_stat "${source}" failed: No such file or directory (2)`,
      "retry",
      /the source file .*\$\(x\)\.fits vanished before it was sent/,
    ],
  ];
  for (const [tool, code, stderr, kind, said] of cases) {
    const error = classifyFailure(failure(tool, code, stderr), "send it", context);
    assert.equal(error.kind, kind, stderr);
    assert.match(error.message, said);
    assert.doesNotMatch(error.message, /the connection to|remote user|destination/, stderr);
    assert.equal(failureScope(error), "file", stderr);
  }
});

Deno.test("a server without SFTP is said as such, of the file that failed: a fix on the server, not a connection lost", () => {
  for (
    const [code, said] of [[255, /offers no SFTP subsystem/], [127, /is not installed/]] as const
  ) {
    const reason = noSftpReason(context, code);
    assert.match(reason, said);
    assert.match(reason, /add "Subsystem sftp internal-sftp" to its sshd_config/);
    const error = classifyFailure(new ExplainedFailure(reason, "fatal"), "send a.fits", context);
    assert.equal(error.kind, "fatal");
    assert.equal(error.message, `Cannot send a.fits: ${reason}`);
    assert.equal(failureScope(error), "file");
  }
  assert.match(noSftpReason({ ...context, fromTo: true }, 255), /or use --method rsync$/);
});

Deno.test("a destination folder not there whose folder above refuses it fails the whole destination, never one file's own folder", () => {
  const error = new TransferError(
    `Cannot send /w/a.fits to u@h:/d/ro/scp/20261130/a.fits: cannot create the folder: ${
      aboveRefusedReason("h", "/d/ro/scp", "/d/ro")
    } (mkdir: cannot create directory '/d/ro/scp': Permission denied)`,
    "retry-later",
  );
  assert.match(
    error.message,
    /may not make the destination folder \/d\/ro\/scp: .* \/d\/ro refuses/,
  );
  // The job pauses on it (a daemon), and no file is said to fail on its own folder alone.
  assert.equal(failureScope(error), "destination");
  assert.equal(ownFolderRefused(error), null);
});

Deno.test("lastLine (errors.ts): the last non-empty line, trimmed, capped where asked; a login that runs no commands quotes at most 200 characters of it", () => {
  assert.equal(lastLine("first\n  second line  \n\n \n"), "second line");
  assert.equal(lastLine(" \n\n"), "");
  assert.equal(lastLine("a\nabcdef", { cap: 3 }), "abc");
  assert.equal(lastLine("", { cap: 3 }), "");
  const long = "x".repeat(300);
  assert.equal(lastLine(`earlier\n${long}\n`), long);
  const context = { host: "freya", destination: "obs@freya", port: null };
  const run = {
    argv: ["ssh", "freya", "true"],
    code: 1,
    signal: null,
    timedOut: false,
    stderr: `said first\n${long}\n`,
    durationMs: 5,
  };
  const reason = noCommandsReason(context, run, true) ?? "";
  assert.ok(reason.includes(`the server said: "${"x".repeat(200)}"`), reason);
  assert.ok(!reason.includes("x".repeat(201)), reason);
});

Deno.test("a tool or a start out of open files (EMFILE, ENFILE) is retried, with the limit to raise, never a permission to fix", () => {
  const said = [
    'scp: open local "/data/night/a_0_00047.fits": Too many open files',
    'rsync: [sender] send_files failed to open "/data/night/a.fits": Too many open files (24)',
    "socket: Too many open files in system",
  ];
  for (const stderr of said) {
    const error = classifyFailure(failure("scp", 1, stderr), "send a.fits", context);
    assert.equal(error.kind, "retry", stderr);
    assert.match(error.message, /ran out of open files .*raise the limit .*LimitNOFILE=/, stderr);
    assert.doesNotMatch(error.message, /permissions/, stderr);
  }
  // Before: "fatal", as a program that is not there.
  const cause = new Error("Failed to spawn '/usr/bin/scp': Too many open files (os error 24)");
  // scp that could not be started: no exit code, no words of its own.
  const unstarted = (message: string, options?: { cause: Error }) =>
    new CommandError(message, {
      argv: ["/usr/bin/scp", "x"],
      code: null,
      signal: null,
      timedOut: false,
      stderr: "",
      durationMs: 1,
    }, options);
  const notStarted = unstarted(
    "Cannot run scp: Failed to spawn '/usr/bin/scp': Too many open files (os error 24)",
    { cause },
  );
  const error = classifyFailure(notStarted, "send a.fits", context);
  assert.equal(error.kind, "retry");
  assert.match(
    error.message,
    /^Cannot send a\.fits: Cannot run scp: .*\(os error 24\): this machine ran out/,
  );
  // A program that is not there still needs a fix.
  const missing = unstarted("Cannot run scp: No such file or directory (os error 2)");
  assert.equal(classifyFailure(missing, "send a.fits", context).kind, "fatal");
});
