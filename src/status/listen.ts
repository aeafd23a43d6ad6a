/**
 * Where the status server listens and which token it asks for, checked
 * before the daemon starts: a non-loopback address without a token is
 * refused.
 *
 * @module
 */
import { dirname } from "node:path";
import { jobKeyLine } from "../config/key_lines.ts";
import { fileInPlaceOfFolder } from "../config/paths.ts";
import { ConfigError } from "../errors.ts";
import { missingSecretFile, othersOwn, ownedByAnother } from "../config/file_mode.ts";
import { posixWord } from "../shell_words.ts";

/** A resolved `status_listen`. */
export interface ListenSettings {
  hostname: string;
  port: number;
  /** Whether only this machine can reach the address. */
  loopback: boolean;
  /** The token every request must carry, or `null` (loopback only). */
  token: string | null;
  /** PEM certificate and key to serve HTTPS with, or `null` for plain HTTP. */
  tls: { cert: string; key: string } | null;
}

/** Whether `hostname` is a loopback address or `localhost`. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * Resolve `status_listen` and `status_token_file`.
 *
 * @param runsAs user id of the account the daemon runs as (the current one unless told), which
 *   (or root) must own the token and key files
 * @returns `null` when the status server is off (`""`)
 * @throws {ConfigError} when the port is out of range, the token file cannot
 *   be read or is empty, or a non-loopback address has no token
 */
export async function listenSettings(
  config: {
    file: string;
    status_listen: string;
    status_token_file: string | null;
    status_tls_cert?: string | null;
    status_tls_key?: string | null;
  },
  runsAs?: number | null,
): Promise<ListenSettings | null> {
  if (config.status_listen === "") return null;
  const at = config.status_listen.lastIndexOf(":");
  const hostname = config.status_listen.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  const port = Number(config.status_listen.slice(at + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw keyError(
      config.file,
      "status_listen",
      `port ${port} is out of range; give a port from 1 to 65535, e.g. "127.0.0.1:8765"`,
    );
  }
  const loopback = isLoopback(hostname);
  let token: string | null = null;
  if (config.status_token_file !== null) {
    const file = config.status_token_file;
    await assertPrivate(
      config.file,
      "status_token_file",
      file,
      ", and whoever has the token may pause jobs",
      runsAs,
    );
    token = (await readNamedFile(config.file, "status_token_file", file)).trim();
    if (token.length < 16) {
      throw keyError(
        config.file,
        "status_token_file",
        `${config.status_token_file} holds ${
          token.length ? "a token shorter than 16 characters" : "no token"
        }; ` +
          "write a long random token into it, e.g. `(umask 077; openssl rand -hex 32 > FILE)`",
      );
    }
  }
  if (!loopback && token === null) {
    throw keyError(
      config.file,
      "status_listen",
      `${config.status_listen} can be reached from other machines, so the status page ` +
        "needs a token: set status_token_file to a file holding one (e.g. `(umask 077; openssl rand -hex 32 > FILE)`), " +
        'or listen on a loopback address such as "127.0.0.1:8765"',
    );
  }
  return { hostname, port, loopback, token, tls: await tlsFiles(config, runsAs) };
}

/** The URL of the status page at `host` (a name, or an address in brackets). */
export function statusUrl(settings: ListenSettings, host: string): string {
  return `${settings.tls ? "https" : "http"}://${host}:${settings.port}/`;
}

/**
 * Read `status_tls_cert` and `status_tls_key`: both or neither, PEM, and a key
 * only its owner can read.
 */
async function tlsFiles(
  config: { file: string; status_tls_cert?: string | null; status_tls_key?: string | null },
  runsAs: number | null | undefined,
): Promise<{ cert: string; key: string } | null> {
  const certFile = config.status_tls_cert ?? null;
  const keyFile = config.status_tls_key ?? null;
  if (certFile === null && keyFile === null) return null;
  if (certFile === null || keyFile === null) {
    const [given, missing] = certFile === null
      ? ["status_tls_key", "status_tls_cert"]
      : ["status_tls_cert", "status_tls_key"];
    throw keyError(
      config.file,
      given,
      `set without ${missing}: HTTPS needs both the certificate and its key ` +
        "(or remove both for plain HTTP)",
    );
  }
  await assertPrivate(config.file, "status_tls_key", keyFile, "", runsAs);
  const read = async (key: string, file: string, kind: RegExp) => {
    const text = await readNamedFile(config.file, key, file);
    if (!kind.test(text)) {
      throw keyError(
        config.file,
        key,
        `${file} is not in PEM form (no "-----BEGIN ${
          key === "status_tls_cert" ? "CERTIFICATE" : "PRIVATE KEY"
        }-----" line); convert it, e.g. with \`openssl x509 -outform PEM\` or \`openssl pkey\``,
      );
    }
    return text;
  };
  return {
    cert: await read("status_tls_cert", certFile, /-----BEGIN CERTIFICATE-----/),
    key: await read("status_tls_key", keyFile, /-----BEGIN [A-Z ]*PRIVATE KEY-----/),
  };
}

/**
 * Refuse a file that others may read or write, or that another account than root and `runsAs`
 * owns (not on Windows), naming the config key, what that would allow (`allows`), and the
 * `chmod` or `chown` that fixes it.
 */
async function assertPrivate(
  configFile: string,
  key: string,
  file: string,
  allows: string,
  runsAs: number | null | undefined,
): Promise<void> {
  const info = await Deno.stat(file).catch(() => null);
  // A folder is no such file at all: reading it says so.
  const mode = info?.isFile ? info.mode : null;
  if (Deno.build.os === "windows" || mode === null) return;
  // Its owner could read it, or put another one there, whatever its mode.
  const account = runsAs === undefined ? Deno.uid() : runsAs;
  if (othersOwn(info!.uid, account)) {
    throw keyError(
      configFile,
      key,
      `refusing ${file}: ${ownedByAnother(info!.uid!, account!)}, and its owner can read ` +
        `it or put another one there${allows}; fix it with: sudo chown ${account} ` +
        `${posixWord(file)}, or give a file of that account's`,
    );
  }
  if ((mode & 0o077) === 0) return;
  throw keyError(
    configFile,
    key,
    `${file} can be read or written by others (mode ${
      (mode & 0o777).toString(8).padStart(4, "0")
    })${allows}; run: chmod 600 ${posixWord(file)}`,
  );
}

/** The text of the file a config key names, or a config error naming the key (or a folder). */
async function readNamedFile(configFile: string, key: string, file: string): Promise<string> {
  const info = await Deno.stat(file).catch(() => null);
  if (info?.isDirectory) {
    throw keyError(configFile, key, `${file} is a folder, not a file; give the file itself`);
  }
  // Reading a pipe would wait for a writer for ever.
  if (info !== null && !info.isFile) {
    throw keyError(
      configFile,
      key,
      `${file} is not a regular file (a device, a pipe?); give the file itself`,
    );
  }
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && key === "status_token_file") {
      throw keyError(configFile, key, missingSecretFile("the token"), error);
    }
    if (error instanceof Deno.errors.NotFound) {
      throw keyError(configFile, key, `${file} does not exist; create it or fix the path`, error);
    }
    if (error instanceof Deno.errors.NotADirectory) {
      throw keyError(
        configFile,
        key,
        `${
          fileInPlaceOfFolder(dirname(file)) ?? "a folder"
        } on the path of ${file} is a file, not a ` +
          "folder; fix the path",
        error,
      );
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw keyError(configFile, key, `cannot read ${file}: ${reason}`, error);
  }
}

/** A config error about the top-level `key` of `configFile`: `FILE:LINE: KEY: message`. */
function keyError(configFile: string, key: string, message: string, cause?: unknown): ConfigError {
  const line = jobKeyLine(configFile, -1, [key]) ?? undefined;
  const place = line === undefined ? configFile : `${configFile}:${line}`;
  return new ConfigError(`${place}: ${key}: ${message}`, { file: configFile, line, cause });
}
