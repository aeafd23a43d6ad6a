/**
 * The commands messages suggest for the user to paste (`chmod 600 ...`,
 * `ssh-keygen -p -f ...`, `puttygen ...`, `openssl x509 ...`,
 * `image-transfer -c ... init`, `ssh ...`, `sudo loginctl ...`) are safe to
 * paste whatever the name: each is run as the user would, through `sh -c`, for
 * files in a folder whose name holds `$(touch CANARY)`, a backtick, a single
 * and a double quote and a backslash. Nothing in the name runs (no CANARY),
 * and the command acts on that exact path: the real `chmod` and `ssh-keygen`
 * on files of a temporary folder, and, for commands that would change the
 * system, stand-ins first on the PATH that record their arguments. On Windows
 * the words are PowerShell's, checked by what they give (no PowerShell here).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { writeConfig } from "../../helpers/files.ts";
import { loadConfig } from "../../../src/config/load.ts";
import { prepareConfigFile } from "../../../src/cli/config.ts";
import { checkLoginFiles, passphraseKeys } from "../../../src/pipeline/login_files.ts";
import { listenSettings } from "../../../src/status/listen.ts";
import { ftpPassword } from "../../../src/transfer/ftp/connect.ts";
import { classifyText } from "../../../src/transfer/classify.ts";
import { planSystemdInstall } from "../../../src/service/systemd.ts";
import { launch } from "../../helpers/service_render.ts";
import { pastedWord, posixWord, powerShellWord } from "../../../src/shell_words.ts";

/** A folder name that runs `touch CANARY` twice if a shell expands it, and ends a `"…"` word. */
const HOSTILE = `in $(touch CANARY) \`touch CANARY\` it's "q" \\ x`;

/** Programs stood in for: each records its arguments, NUL-separated, and changes nothing. */
const STAND_INS = ["image-transfer", "puttygen", "openssl", "ssh", "sudo"];

interface Box {
  /** The temporary folder; the shell runs here, where `touch CANARY` would land. */
  root: string;
  /** The folder with the hostile name, in `root`. */
  folder: string;
  /** The stand-ins, first on the PATH of {@linkcode paste}. */
  bin: string;
}

async function withBox(fn: (box: Box) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-pasted-" });
  try {
    const folder = join(root, HOSTILE);
    const bin = join(root, "bin");
    await Deno.mkdir(folder);
    await Deno.mkdir(bin);
    for (const name of STAND_INS) {
      await Deno.writeTextFile(
        join(bin, name),
        `#!/bin/sh\nprintf '%s\\0' "$@" > '${join(bin, `args-${name}`)}'\n`,
        { mode: 0o755 },
      );
    }
    await fn({ root, folder, bin });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** Every CANARY below `dir`. */
async function canaries(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.includes("CANARY") && entry.name !== HOSTILE) found.push(join(dir, entry.name));
    if (entry.isDirectory) found.push(...await canaries(join(dir, entry.name)));
  }
  return found;
}

/**
 * Paste `command` into `sh` in the box's root, the stand-ins first on the PATH: it must succeed, and
 * run nothing of a name.
 */
async function paste(box: Box, command: string): Promise<void> {
  const out = await new Deno.Command("sh", {
    args: ["-c", command],
    cwd: box.root,
    env: { PATH: `${box.bin}:${Deno.env.get("PATH")}` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assert.deepEqual(await canaries(box.root), [], `${command} ran a part of the name`);
  assert.ok(out.success, `${command}: ${text.decode(out.stderr)}${text.decode(out.stdout)}`);
}

/** The arguments the stand-in `program` was last run with. */
async function argsOf(box: Box, program: string): Promise<string[]> {
  const text = await Deno.readTextFile(join(box.bin, `args-${program}`));
  await Deno.remove(join(box.bin, `args-${program}`));
  return text.split("\0").slice(0, -1);
}

/**
 * The text of `message` from `start` (included) to `end`, the first after it (left out), or
 * else to the end of the line.
 */
function upTo(message: string, start: string, end?: string): string {
  const from = message.indexOf(start);
  assert.ok(from >= 0, `no ${JSON.stringify(start)} in: ${message}`);
  const line = message.slice(from).split("\n")[0];
  if (end === undefined) return line;
  assert.ok(
    line.includes(end),
    `no ${JSON.stringify(end)} after ${JSON.stringify(start)}: ${line}`,
  );
  return line.slice(0, line.indexOf(end, start.length));
}

/** The message of what `promise` rejects with. */
async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  assert.fail("expected a rejection");
}

/** A config for one job, written in `box.root` (mode 600), loaded. */
async function configWith(box: Box, fields: Record<string, unknown>) {
  const file = join(box.root, "config.yaml");
  await writeConfig(file, {
    watch_path: join(box.root, "watch"),
    remote_host: "example.invalid",
    remote_base_path: "/data",
    ...fields,
  });
  await Deno.chmod(file, 0o600);
  return await loadConfig(file);
}

async function sshKeygen(...args: string[]): Promise<boolean> {
  const out = await new Deno.Command("ssh-keygen", { args, stdout: "null", stderr: "null" })
    .output();
  return out.success;
}

const mode = async (file: string) => (await Deno.stat(file)).mode! & 0o777;

Deno.test("the chmod 600 and ssh-keygen -p of an SSH key: pasted, they act on that key, and nothing in its folder's name runs", async () => {
  await withBox(async (box) => {
    const key = join(box.folder, "id_key");
    assert.ok(await sshKeygen("-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", key));
    await Deno.chmod(key, 0o644);
    const config = await configWith(box, { ssh_identity_file: key });
    const open = await rejection(checkLoginFiles(config));
    await paste(box, upTo(open, "chmod 600 "));
    assert.equal(await mode(key), 0o600);

    await Deno.remove(key);
    await Deno.remove(`${key}.pub`);
    assert.ok(await sshKeygen("-q", "-t", "ed25519", "-N", "old secret", "-C", "t", "-f", key));
    const [warning] = passphraseKeys(config);
    const command = upTo(warning, "ssh-keygen -p -f ", ", or give a key without one");
    // The passphrases as options, where ssh-keygen would ask for them.
    await paste(box, `${command} -P 'old secret' -N ''`);
    assert.ok(await sshKeygen("-y", "-P", "", "-f", key), "the passphrase is still there");
  });
});

Deno.test("the puttygen of a PuTTY key, the openssl of a DER certificate and the chmod 600 of an FTP password file: pasted, they name those files, and nothing in their folder's name runs", async () => {
  await withBox(async (box) => {
    const key = join(box.folder, "id_key.ppk");
    await Deno.writeTextFile(key, "PuTTY-User-Key-File-3: ssh-ed25519\n", { mode: 0o600 });
    const putty = await rejection(
      checkLoginFiles(await configWith(box, { ssh_identity_file: key })),
    );
    await paste(box, upTo(putty, "puttygen "));
    assert.deepEqual(await argsOf(box, "puttygen"), [
      key,
      "-O",
      "private-openssh",
      "-o",
      "id_ed25519",
    ]);

    const ca = join(box.folder, "ca.der");
    const password = join(box.folder, "password");
    await Deno.writeTextFile(ca, "\x30\x82 not PEM\n");
    await Deno.writeTextFile(password, "secret\n", { mode: 0o644 });
    await Deno.chmod(password, 0o644);
    const config = await configWith(box, {
      transfer_method: "ftp",
      ftp_tls: "required",
      ftp_ca_file: ca,
      ftp_password_file: password,
    });
    const ftp = await rejection(checkLoginFiles(config));
    await paste(box, upTo(ftp, "openssl x509 "));
    assert.deepEqual(await argsOf(box, "openssl"), [
      "x509",
      "-inform",
      "DER",
      "-in",
      ca,
      "-out",
      "ca.pem",
    ]);
    // What a login says of the same file (the daemon reads it again then).
    const login = await rejection(Promise.resolve().then(() => ftpPassword(config.jobs[0])));
    await paste(box, upTo(login, "chmod 600 "));
    assert.equal(await mode(password), 0o600);
  });
});

Deno.test("the chmod 600 of a status token file: pasted, it acts on that file, and nothing in its folder's name runs", async () => {
  await withBox(async (box) => {
    const token = join(box.folder, "token");
    await Deno.writeTextFile(token, "0123456789abcdef0123\n", { mode: 0o640 });
    await Deno.chmod(token, 0o640);
    const message = await rejection(listenSettings({
      file: join(box.root, "config.yaml"),
      status_listen: "0.0.0.0:8765",
      status_token_file: token,
    }));
    await paste(box, upTo(message, "chmod 600 "));
    assert.equal(await mode(token), 0o600);
  });
});

Deno.test("the image-transfer -c commands of init, of a missing, .toml, TOML or folder config and of the untouched template: pasted, they name that file, and nothing in its folder's name runs", async () => {
  await withBox(async (box) => {
    const missing = join(box.folder, "missing.yaml");
    const notFound = await rejection(loadConfig(missing));
    await paste(box, upTo(notFound, "image-transfer -c ", "`, or check the path"));
    assert.deepEqual(await argsOf(box, "image-transfer"), ["-c", missing, "init"]);

    const toml = await rejection(prepareConfigFile(join(box.folder, "c.toml"), "-c"));
    // The words to give after -c, in parentheses that end the message.
    const yamlName = (message: string) => upTo(message, "(-c ").slice(1, -1);
    await paste(box, `image-transfer ${yamlName(toml)} init`);
    assert.deepEqual(await argsOf(box, "image-transfer"), [
      "-c",
      join(box.folder, "c.yaml"),
      "init",
    ]);
    // A TOML config: the check of the same keys saved as YAML beside it.
    const tomlFile = join(box.folder, "c.toml");
    await Deno.writeTextFile(tomlFile, 'watch_path = "/data/images"\n');
    const tomlRead = await rejection(loadConfig(tomlFile));
    await paste(
      box,
      upTo(tomlRead, "image-transfer -c ", " config validate`") + " config validate",
    );
    assert.deepEqual(await argsOf(box, "image-transfer"), [
      "-c",
      join(box.folder, "c.yaml"),
      "config",
      "validate",
    ]);
    const folder = await rejection(prepareConfigFile(box.folder, "-c"));
    await paste(box, `image-transfer ${yamlName(folder)} init`);
    assert.deepEqual(await argsOf(box, "image-transfer"), [
      "-c",
      join(box.folder, "config.yaml"),
      "init",
    ]);

    const file = join(box.folder, "config.yaml");
    const env = { HOME: box.root, XDG_STATE_HOME: "", XDG_CONFIG_HOME: "" };
    const wrote = await runCli(["-c", file, "init"], { env });
    assert.equal(wrote.code, 0, wrote.stderr);
    await paste(
      box,
      upTo(wrote.stdout, "image-transfer -c ", " config validate`") + " config validate",
    );
    assert.deepEqual(await argsOf(box, "image-transfer"), ["-c", file, "config", "validate"]);
    const again = await runCli(["-c", file, "init"], { env });
    assert.equal(again.code, 2, again.stderr);
    const [keep, overwrite] = again.stderr.split("`, or overwrite it with `");
    await paste(box, upTo(keep, "image-transfer -c ", " config validate") + " config validate");
    assert.deepEqual(await argsOf(box, "image-transfer"), ["-c", file, "config", "validate"]);
    await paste(box, upTo(overwrite, "image-transfer -c ", " init --force`") + " init --force");
    assert.deepEqual(await argsOf(box, "image-transfer"), ["-c", file, "init", "--force"]);
    // The template as init wrote it, refused with the command that checks it again.
    const template = await runCli(["-c", file, "config", "validate"], { env });
    assert.equal(template.code, 2, template.stderr);
    await paste(
      box,
      upTo(template.stderr, "image-transfer -c ", " config validate`") + " config validate",
    );
    assert.deepEqual(await argsOf(box, "image-transfer"), ["-c", file, "config", "validate"]);
  });
});

Deno.test("the ssh command of a refused login and the loginctl of a per-user service: pasted, they name that key and that user, and nothing in a name runs", async () => {
  await withBox(async (box) => {
    const key = join(box.folder, "id_key");
    const known = join(box.folder, "known_hosts");
    const { reason } = classifyText("Permission denied (publickey).", {
      host: "example.invalid",
      destination: "obs@example.invalid",
      port: 2222,
      identityFile: key,
      options: [`UserKnownHostsFile=${known}`],
    });
    await paste(box, upTo(reason, "ssh -o BatchMode=yes", ' true"') + " true");
    assert.deepEqual(await argsOf(box, "ssh"), [
      "-o",
      "BatchMode=yes",
      "-p",
      "2222",
      "-i",
      key,
      "-o",
      `UserKnownHostsFile=${known}`,
      "obs@example.invalid",
      "true",
    ]);

    const user = `o'b$(touch CANARY)\`touch CANARY\``;
    const { notes } = planSystemdInstall(
      { os: "linux", scope: "user", user, uid: 1000, gid: 1000, home: box.root },
      launch(["/usr/local/bin/image-transfer", "run", "-c", "/etc/it/c.yaml"]),
      { update: false },
    );
    const linger = notes.find((line) => line.includes("enable-linger"));
    await paste(box, linger!.trim());
    assert.deepEqual(await argsOf(box, "sudo"), ["loginctl", "enable-linger", user]);
  });
});

Deno.test("a pasted word keeps every name as itself: in dash and bash, and in PowerShell's quoting on Windows", async () => {
  const names = [
    HOSTILE,
    "plain/name-1.fits",
    "",
    "'",
    "a\\'b",
    "~/x",
    "-n",
    "a b\tc",
    "$HOME",
    "!x",
  ];
  for (const shell of ["dash", "bash"]) {
    for (const name of names) {
      const out = await new Deno.Command(shell, {
        args: ["-c", `printf '%s' ${posixWord(name)}`],
        stdout: "piped",
      }).output();
      assert.equal(new TextDecoder().decode(out.stdout), name, `${shell}: ${posixWord(name)}`);
    }
  }
  assert.equal(posixWord("/data/cam_1/id-key.pem"), "/data/cam_1/id-key.pem");
  assert.equal(
    pastedWord(`C:\\Users\\obs\\.ssh\\id_key`, "windows"),
    `C:\\Users\\obs\\.ssh\\id_key`,
  );
  // No PowerShell here: its rules, by what they give. In single quotes only a quote (and the
  // typographic single quotes, which PowerShell also takes for quotes) is special, and doubled.
  assert.equal(
    pastedWord("C:\\in $(x) `n it's \u2019q\u2019 @a,b", "windows"),
    "'C:\\in $(x) `n it''s \u2019\u2019q\u2019\u2019 @a,b'",
  );
  assert.equal(powerShellWord(""), "''");
  assert.equal(pastedWord("it's", "linux"), `'it'\\''s'`);
});
