/**
 * The files a job logs in with (`ssh_identity_file`, `ftp_password_file`,
 * `ftp_ca_file`), checked before a start (see `start_checks.ts`): there, a
 * file and not a folder, of the kind the key asks for, and private where
 * they hold a secret.
 *
 * @module
 */
import { dirname } from "node:path";
import { jobKeyPlace } from "../config/key_lines.ts";
import { fileInPlaceOfFolder } from "../config/paths.ts";
import { COMMAND_LINE_CONFIG, type Config } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import { missingSecretFile, othersOwn, ownedByAnother } from "../config/file_mode.ts";
import { pastedWord, posixWord } from "../shell_words.ts";

/** The keys naming a file a job of each method logs in with, and whether it must be private. */
const LOGIN_FILES = {
  scp: [["ssh_identity_file", true]],
  rsync: [["ssh_identity_file", true]],
  ftp: [["ftp_password_file", true], ["ftp_ca_file", false]],
  local: [],
} as const;

/** What each key's file holds, for a message about a folder given instead. */
const HOLDS = {
  ssh_identity_file: "the private key",
  ftp_password_file: "the password",
  ftp_ca_file: "the certificate",
} as const;

/** How much of a file is read to tell what it holds. */
const HEAD_BYTES = 64 * 1024;

/**
 * Refuse a file a job logs in with that is not there or is a folder, a key
 * that is not a private key, a CA file without a PEM certificate, and a key
 * or password file that others may read (OpenSSH ignores such a key when it
 * belongs to the account it runs as; the password is refused at each login).
 * POSIX modes only.
 *
 * @param runsAs user id of the account the daemon runs as (the current one unless told)
 * @throws {ConfigError} naming each file with its key's line, and what to do
 */
export async function checkLoginFiles(config: Config, runsAs?: number | null): Promise<void> {
  const account = runsAs === undefined && Deno.build.os !== "windows" ? Deno.uid() : runsAs;
  // Whether this process reads as the daemon would (not root checking for another account).
  const asItself = runsAs === undefined || runsAs === Deno.uid();
  const problems: string[] = [];
  for (const [index, job] of config.jobs.entries()) {
    for (const [key, secret] of LOGIN_FILES[job.transfer_method]) {
      const file = job[key];
      if (file === null) continue;
      const place = jobKeyPlace(config, index, key);
      let info: Deno.FileInfo;
      try {
        info = await Deno.stat(file);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound && key === "ftp_password_file") {
          problems.push(
            `${place}: ${
              missingSecretFile(
                "the password",
                config.file === COMMAND_LINE_CONFIG
                  ? ", or its variable with --ftp-password-env"
                  : ", or its variable in ftp_password_env",
              )
            }`,
          );
        } else if (error instanceof Deno.errors.NotFound) {
          problems.push(`${place}: ${file} does not exist; create it or fix the path`);
        } else if (error instanceof Deno.errors.NotADirectory) {
          // Else the login would fail as if the key were not installed, or the password wrong.
          problems.push(
            `${place}: ${
              fileInPlaceOfFolder(dirname(file)) ?? "a folder"
            } on the path of ${file} is a ` +
              "file, not a folder; fix the path",
          );
        } else if (error instanceof Deno.errors.PermissionDenied && asItself) {
          problems.push(`${place}: ${unreadable(file, "a folder on its way", secret)}`);
        }
        // Another reason is told where the file is read.
        continue;
      }
      if (info.isDirectory) {
        problems.push(
          `${place}: ${file} is a folder, not a file; give the file holding ${HOLDS[key]}`,
        );
        continue;
      }
      // Reading a pipe would wait for a writer for ever.
      if (!info.isFile) {
        problems.push(
          `${place}: ${file} is not a regular file (a device, a pipe?); give the file holding ` +
            HOLDS[key],
        );
        continue;
      }
      if (asItself && readRefused(file)) {
        problems.push(`${place}: ${unreadable(file, "its mode or owner", secret)}`);
        continue;
      }
      // Its owner could put another key or password there, or read this one (mode 600 or not).
      if (secret && othersOwn(info.uid, account)) {
        problems.push(
          `${place}: refusing ${file}: ${ownedByAnother(info.uid!, account!)}, and its owner ` +
            `decides ${HOLDS[key]} the daemon logs in with, and can read it; fix it with: ` +
            `sudo chown ${account} ${posixWord(file)}, or give a file of that account's`,
        );
        continue;
      }
      // The password is the file's first line: an empty one would log in with no password.
      const firstLine = key === "ftp_password_file" ? head(file, 4096)?.split(/\r?\n/)[0] : null;
      if (firstLine === "") {
        problems.push(
          `${place}: ${file} ${info.size === 0 ? "is empty" : "has an empty first line"}: ` +
            "write the password on its first line",
        );
        continue;
      }
      const wrongKind = key === "ssh_identity_file"
        ? notAPrivateKey(file)
        : key === "ftp_ca_file"
        ? notACertificate(file)
        : null;
      if (wrongKind !== null) problems.push(`${place}: ${wrongKind}`);
      // A public key given for the private one holds no secret: a chmod of it would only mislead.
      if (key === "ssh_identity_file" && isPublicKey(file)) continue;
      const mode = (info.mode ?? 0) & 0o777;
      const mine = key !== "ssh_identity_file" || account === null || info.uid === account;
      if (!secret || Deno.build.os === "windows" || (mode & 0o077) === 0 || !mine) continue;
      const octal = mode.toString(8).padStart(4, "0");
      const why = key === "ssh_identity_file" ? ", and ssh ignores such a key" : "";
      problems.push(
        `${place}: ${file} can be read or written by others ` +
          `(mode ${octal})${why}; run: chmod 600 ${posixWord(file)}`,
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file: config.file });
}

/**
 * Warnings for the jobs whose `ssh_identity_file` is protected by a passphrase: ssh, which never
 * prompts here, can use such a key only through an agent that holds it (and a service started at
 * boot has none), so logins would be refused although the key is installed.
 */
export function passphraseKeys(config: Config): string[] {
  return config.jobs.flatMap((job, index) => {
    const file = job.ssh_identity_file;
    if (file === null || !["scp", "rsync"].includes(job.transfer_method)) return [];
    if (!hasPassphrase(head(file, 16 * 1024) ?? "")) return [];
    return [
      `${jobKeyPlace(config, index, "ssh_identity_file")}: ${file} is protected by a ` +
      "passphrase, which ssh cannot ask for here: logins are refused unless ssh-agent holds the " +
      `key (a service started at boot has none); remove it with: ssh-keygen -p -f ${
        pastedWord(file)
      }, or give a key without one`,
    ];
  });
}

/**
 * Warnings for the ftp jobs whose `ftp_password_env` names a variable that is not set: a daemon
 * started with this environment could not log in (its environment never changes while it runs).
 * Only a warning: `config validate` may run in another shell than the daemon, whose service
 * manager may give it the variable.
 */
export function unsetPasswordVariables(config: Config): string[] {
  return config.jobs.flatMap((job, index) => {
    const name = job.ftp_password_env;
    if (name === null || job.transfer_method !== "ftp" || Deno.env.get(name) !== undefined) {
      return [];
    }
    // Without a config file the variable was named by --ftp-password-env: said in its words.
    const options = config.file === COMMAND_LINE_CONFIG;
    return [
      `${
        options ? `--ftp-password-env ${name}` : jobKeyPlace(config, index, "ftp_password_env")
      }: the variable ${name} is not set here, so a daemon started from here could not log ` +
      `in: set it (export ${name}=...) where image-transfer runs, or give ` +
      `${options ? "--ftp-password-file" : "ftp_password_file"} instead`,
    ];
  });
}

/** Whether the private key `text` is encrypted (OpenSSH format, PEM or PKCS#8). */
function hasPassphrase(text: string): boolean {
  if (/^-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m.test(text)) return true;
  const body = /-----BEGIN OPENSSH PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END/.exec(text);
  if (body === null) return false;
  let bytes: string;
  try {
    bytes = atob(body[1].replace(/\s/g, ""));
  } catch {
    return false;
  }
  // "openssh-key-v1\0", then the cipher's name as a string (a 32-bit length, then its bytes).
  const magic = "openssh-key-v1\0";
  if (!bytes.startsWith(magic)) return false;
  const at = magic.length;
  const length = (bytes.charCodeAt(at) << 24) | (bytes.charCodeAt(at + 1) << 16) |
    (bytes.charCodeAt(at + 2) << 8) | bytes.charCodeAt(at + 3);
  return bytes.slice(at + 4, at + 4 + length) !== "none";
}

/** Whether this account may not open the file `path` for reading. */
function readRefused(path: string): boolean {
  try {
    Deno.openSync(path).close();
    return false;
  } catch (error) {
    return error instanceof Deno.errors.PermissionDenied;
  }
}

/** Why the daemon's account cannot read `path`, and what to do (a `secret` one stays private). */
function unreadable(path: string, why: string, secret: boolean): string {
  return `${path} cannot be read by this account (permission denied by ${why}); make it ` +
    `readable by the account the daemon runs as (${
      secret ? "its owner, mode 600" : "e.g. mode 644"
    })`;
}

/**
 * The first `bytes` of the file `path` as text; `null` when it cannot be read here, or is no
 * regular file (a pipe would wait for a writer for ever).
 */
function head(path: string, bytes: number): string | null {
  try {
    if (!Deno.statSync(path).isFile) return null;
    using file = Deno.openSync(path);
    const buffer = new Uint8Array(bytes);
    return new TextDecoder().decode(buffer.subarray(0, file.readSync(buffer) ?? 0));
  } catch {
    return null;
  }
}

/** How an OpenSSH public key (a `.pub` file) starts. */
const PUBLIC_KEY_START = /^(ssh-|ecdsa-|sk-)/;

/** Whether the file `path` holds an OpenSSH public key (by its first line). */
function isPublicKey(path: string): boolean {
  return PUBLIC_KEY_START.test(head(path, 64)?.trimStart() ?? "");
}

/**
 * Why the file `path` is not a private key OpenSSH can use (a public key, a
 * PuTTY key, anything else), by its first line; `null` when it looks like
 * one or cannot be read here (ssh then says why).
 */
function notAPrivateKey(path: string): string | null {
  const text = head(path, 64)?.trimStart();
  if (text === undefined || /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) return null;
  if (PUBLIC_KEY_START.test(text)) {
    return `${path} is a public key; give the private key (the same name without .pub)`;
  }
  if (text.startsWith("PuTTY-User-Key-File")) {
    return `${path} is a PuTTY key, which OpenSSH cannot read; convert it: ` +
      `puttygen ${pastedWord(path)} -O private-openssh -o id_ed25519`;
  }
  return `${path} is not a private key (it does not start with "-----BEGIN \u2026 PRIVATE KEY-----"); ` +
    "give the key file ssh -i would take";
}

/**
 * Why the file `path` is no certificate TLS can trust (no PEM
 * `-----BEGIN CERTIFICATE-----` block: a DER file, a key, anything else);
 * `null` when it holds one or cannot be read here (the login then says why).
 */
function notACertificate(path: string): string | null {
  const text = head(path, HEAD_BYTES);
  if (text === null || text.includes("-----BEGIN CERTIFICATE-----")) return null;
  return `${path} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line); give the ` +
    "certificate of the server's authority (or its own) in PEM form; a DER (binary) one converts " +
    `with: openssl x509 -inform DER -in ${pastedWord(path)} -out ca.pem`;
}
