/**
 * Upload one file through `ssh` while both sides compute its SHA-256: the
 * local sum as the bytes are read, the remote one as they are written
 * (`tee` into the temporary file, piped into `openssl dgst -sha256`,
 * `sha256sum` or `shasum -a 256`). For a big file with checksum verification
 * this replaces "upload, then read it all again remotely" with one pass.
 *
 * The remote command line holds only fixed words; the temporary path travels
 * as the first line of the input, every byte written as a `\0ooo` escape that
 * `printf %b` turns back into the exact name.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { runCommand } from "./run_command.ts";
import { shellQuote, SSH_ENV, type SshSession } from "./ssh.ts";

/**
 * The remote program (POSIX sh, no single quotes, no backslashes, one line,
 * so any login shell passes it through untouched). Creating the file first
 * turns "permission denied" and similar into a failed command with the
 * system's message.
 */
const REMOTE_SCRIPT = [
  "IFS= read -r h || exit 97",
  'p=$(printf "%bx" "$h")',
  "p=${p%x}",
  ': > "$p" || exit 96',
  'if openssl dgst -sha256 -r </dev/null >/dev/null 2>&1; then H="openssl dgst -sha256 -r"',
  "elif command -v sha256sum >/dev/null 2>&1; then H=sha256sum",
  'elif command -v shasum >/dev/null 2>&1; then H="shasum -a 256"',
  'else echo "no sha256sum, shasum or openssl on the remote host" >&2; exit 98; fi',
  'tee -- "$p" | $H',
].join("; ");

/** Every byte of `path` (UTF-8) as a `\0ooo` escape for `printf %b`. */
export function octalEscape(path: string): string {
  return Array.from(new TextEncoder().encode(path), (b) => `\\0${b.toString(8).padStart(3, "0")}`)
    .join("");
}

/** Both sums of a streamed upload. */
export interface StreamedSums {
  local: string;
  remote: string;
}

/**
 * Send `source` to `remotePath` (a temporary name) and return both SHA-256
 * sums; the caller compares them and renames.
 *
 * @throws {CommandError} when ssh or the remote side fails (e.g. permission denied)
 * @throws `signal.reason` when aborted
 */
export async function streamUpload(
  session: SshSession,
  source: string,
  remotePath: string,
  options: { timeoutMs?: number; signal?: AbortSignal },
): Promise<StreamedSums> {
  const hash = createHash("sha256");
  const file = await Deno.open(source, { read: true });
  const header = new TextEncoder().encode(`${octalEscape(remotePath)}\n`);
  let closed = false;
  const close = () => {
    if (!closed) file.close();
    closed = true;
  };
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(header);
    },
    async pull(controller) {
      const buffer = new Uint8Array(1024 * 1024);
      const n = await file.read(buffer);
      if (n === null) {
        close();
        controller.close();
        return;
      }
      const chunk = buffer.subarray(0, n);
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    cancel: close,
  });
  try {
    const result = await runCommand(
      await session.sshArgv(["sh", "-c", shellQuote(REMOTE_SCRIPT)]),
      { stdin: input, timeoutMs: options.timeoutMs, signal: options.signal, env: SSH_ENV },
    );
    const remote = new TextDecoder().decode(result.stdout).trim().split(/\s+/)[0] ?? "";
    return { local: hash.digest("hex"), remote: remote.replace(/^\\/, "") };
  } finally {
    close();
  }
}
