/**
 * Reading a copy back for `verify_transfer: checksum` on a server without
 * `HASH`/`XSHA256`: what to say when the server will not send it (an
 * upload-only login, as archive drop boxes often are), and the check `doctor`
 * makes of it with its probe file.
 *
 * @module
 */
import { Writable } from "node:stream";
import type { Client } from "basic-ftp";

/** Why `verify_transfer: checksum` cannot work where the server refused `RETR` with `reply`. */
export function readBackRefusal(reply: string): string {
  return `the server refuses to send the copy back (RETR: ${reply.trim()}), which ` +
    "verify_transfer: checksum needs where it offers no HASH or XSHA256: allow the login to " +
    "download, or set verify_transfer: size";
}

/**
 * The `checksum` line of `doctor`: what the server offers, and without a
 * checksum command, whether it sends `probe` (a file just written) back.
 */
export async function checksumCheck(
  client: Client,
  features: { hash: boolean; xsha256: boolean },
  verify: "none" | "size" | "checksum",
  probe: string,
): Promise<{ verdict: "ok" | "skip" | "fail"; detail: string }> {
  if (features.hash || features.xsha256) {
    return { verdict: "ok", detail: `${features.hash ? "HASH" : "XSHA256"} (SHA-256) offered` };
  }
  const detail = "the server offers no HASH or XSHA256: each arrival is read back to compare " +
    "its SHA-256 (a second transfer of every file; verify_transfer: size avoids it)";
  if (verify !== "checksum") return { verdict: "skip", detail };
  try {
    await client.downloadTo(new Writable({ write: (_chunk, _encoding, done) => done() }), probe);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    // The library's FTPError with the server's 5xx code (not imported: connect.ts imports this).
    const code = (error as { code?: unknown }).code;
    const refused = error instanceof Error && error.name === "FTPError" && Number(code) >= 500;
    return { verdict: "fail", detail: refused ? readBackRefusal(reason) : `read back: ${reason}` };
  }
  return { verdict: "ok", detail };
}
