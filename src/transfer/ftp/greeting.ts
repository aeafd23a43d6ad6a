/**
 * The first words of the server at `ftp_port`: an FTP server greets with a
 * three-digit reply (`220 ...`). Anything else (an SSH server's `SSH-2.0-...`,
 * where SFTP was taken for FTP) would leave the connection waiting for a
 * greeting that never comes, until the server gives up on it.
 *
 * @module
 */
import type { Client } from "basic-ftp";
import { TransferError } from "../../errors.ts";

/** Printable start of what the server said, for a message. */
function shown(text: string): string {
  return JSON.stringify(text.split(/\r?\n/)[0].slice(0, 80));
}

/** How long a server that took the connection may take to greet (at most half the reply wait). */
export const GREETING_WAIT_MS = 60_000;

/**
 * Watch the greeting of the connection `client` has just begun to `port` of
 * `server`: when it is no FTP reply, end the connection at once with a fatal
 * {@linkcode TransferError} saying what answered (the connect then rejects with it).
 * One that sends nothing for {@linkcode GREETING_WAIT_MS} (at most half of `timeoutMs`, the wait
 * for a reply) once connected (a server that waits for TLS first: implicit FTPS) ends with a
 * retryable one saying so. `fromTo`: a run's without a config file (the fix is said of `--to`).
 */
export function refuseNonFtpGreeting(
  client: Client,
  server: string,
  port: number,
  timeoutMs: number,
  fromTo = false,
): void {
  const socket = client.ftp.socket;
  const waitMs = Math.min(GREETING_WAIT_MS, Math.max(1000, Math.floor(timeoutMs / 2)));
  const seconds = waitMs / 1000;
  let silence: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    clearTimeout(silence);
    socket.off("data", onData);
    socket.off("close", stop);
  };
  socket.once("connect", () => {
    silence = setTimeout(() => {
      stop();
      client.ftp.closeWithError(
        new TransferError(
          `FTP server ${server}: connect: port ${port} took the connection but sent no FTP greeting ` +
            `within ${seconds} s: a server that expects TLS at once (implicit FTPS, usually ` +
            "on port 990) is not supported: give its explicit FTPS port (usually 21) " +
            `${fromTo ? "in --to: ftps://user@host:PORT/path" : "in ftp_port"} (else the server ` +
            "is far too slow to greet)",
          "retry",
        ),
      );
    }, waitMs);
  });
  socket.on("close", stop);
  let seen = "";
  const onData = (chunk: Uint8Array | string) => {
    clearTimeout(silence);
    seen += typeof chunk === "string" ? chunk : new TextDecoder("latin1").decode(chunk);
    if (seen.length < 4 && !seen.includes("\n")) return;
    stop();
    if (/^\d{3}/.test(seen)) return;
    const what = seen.startsWith("SSH-")
      ? `answers as an SSH server (${shown(seen)}), not FTP: for SFTP or SSH ${
        fromTo
          ? "give --to user@host:/path (scp, or rsync with --method rsync); else check the port in --to"
          : "use transfer_method scp or rsync; else check ftp_port"
      }`
      : `does not answer as an FTP server (it said ${shown(seen)}): check ${
        fromTo ? "the port and host in --to" : "ftp_port and remote_host"
      }`;
    client.ftp.closeWithError(
      new TransferError(`FTP server ${server}: connect: port ${port} ${what}`, "fatal"),
    );
  };
  socket.on("data", onData);
}
