/**
 * A small plain-FTP server on 127.0.0.1 that works until it stops answering:
 * from the first command a pattern matches on, it reads on but replies
 * nothing more on that connection (a server hung on a dead disk or a lost
 * session), or, with `stallData`, it accepts an upload (`150`) and reads none
 * of its data until told to read again; with `slowData`, it reads an upload's
 * data a small piece at a time, with pauses, until told to read at full speed
 * (an upload that moves, slowly, while another is held); with `cutAfter`, it carries out the
 * first command that matches and closes that connection instead of replying (a session killed,
 * or a link lost, after the server did the work). It keeps files in
 * memory, answers what the `ftp` transport sends (passive mode, no TLS, no
 * checksum command unless asked: `HASH`) and counts logins, the commands it left unanswered and the
 * bytes it read of each upload.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { JobConfig } from "../../src/config/types.ts";
import { transportTestJob } from "./jobs.ts";
import { freePort } from "./net.ts";

/** Options of {@linkcode startSilentFtp}. */
export interface SilentFtpOptions {
  /** The first command (matched from its start, e.g. `/^MKD /`) given no reply, nor any after. */
  silentFrom?: RegExp;
  /**
   * Whether `STOR` is answered `150` and its data not read (nor answered) until `readAgain`:
   * `true` for every upload, a pattern for those whose (absolute) path it matches.
   */
  stallData?: boolean | RegExp;
  /** The uploads (by absolute path) whose data is read slowly but steadily until `readFast`. */
  slowData?: RegExp;
  /** The first command (matched from its start) carried out, then its connection closed unanswered. */
  cutAfter?: RegExp;
  /** Offer `HASH` (SHA-256 only, chosen with `OPTS HASH SHA-256`), as ProFTPD's mod_digest does. */
  hash?: boolean;
}

/** What is read of a `slowData` upload at a time, and the pause after each piece. */
const SLOW_PIECE = 64 * 1024;
const SLOW_PAUSE_MS = 5;

/** A running {@linkcode startSilentFtp} server. */
export interface SilentFtp {
  port: number;
  /** Control connections taken. */
  readonly connections: number;
  /** Every command received (`PASS` without the password). */
  readonly received: string[];
  /** Commands received and left without a reply. */
  readonly unanswered: string[];
  /** Files stored, by path. */
  readonly files: Map<string, Uint8Array>;
  /** Bytes read so far of each upload begun (by the path it is uploaded to). */
  readonly bytesRead: Map<string, number>;
  /** An anonymous plain-FTP job sending to `/dest` there, with `overrides`. */
  job(overrides: Partial<JobConfig>): JobConfig;
  /** Answer on new connections again (those gone silent stay so). */
  answerAgain(): void;
  /** Read the uploads held with `stallData` (and every later one) to their end, and answer them. */
  readAgain(): void;
  /** Read the `slowData` uploads (and every later one) at full speed. */
  readFast(): void;
  stop(): Promise<void>;
}

/**
 * Listen on a free port of 127.0.0.1: another if the one found free is taken before it is
 * listened on (tests in parallel look for free ports too).
 */
function listenOnFreePort(): { listener: Deno.Listener; port: number } {
  for (let tries = 1;; tries++) {
    const port = freePort();
    try {
      return { listener: Deno.listen({ hostname: "127.0.0.1", port }), port };
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse) || tries === 20) throw error;
    }
  }
}

/** Start a server (see the module doc). */
export function startSilentFtp(options: SilentFtpOptions = {}): SilentFtp {
  const { listener, port } = listenOnFreePort();
  const open = new Set<Deno.Conn | Deno.Listener>([listener]);
  const files = new Map<string, Uint8Array>();
  const bytesRead = new Map<string, number>();
  let slowData = options.slowData;
  const received: string[] = [];
  const unanswered: string[] = [];
  let silentFrom = options.silentFrom;
  let cutAfter = options.cutAfter;
  // Resolved `true` by `readAgain`, `false` as the server stops (a held upload is never read).
  const stalled = options.stallData ? Promise.withResolvers<boolean>() : null;
  const stallsData = (path: string) =>
    options.stallData instanceof RegExp ? options.stallData.test(path) : stalled !== null;
  const sessions: Promise<void>[] = [];
  let connections = 0;

  const session = async (conn: Deno.Conn) => {
    const encoder = new TextEncoder();
    let cutting = false;
    const reply = (text: string) => {
      if (!cutting) return conn.write(encoder.encode(`${text}\r\n`)).then(() => {});
      conn.close();
      return Promise.reject(new Error("cut off after the command"));
    };
    let silent = false;
    await reply("220 silent-ftp ready");
    let cwd = "/";
    let data: Deno.Listener | null = null;
    let renameFrom = "";
    const absolute = (path: string) =>
      path.startsWith("/") ? path : `${cwd.replace(/\/$/, "")}/${path}`;
    const dataConn = async () => {
      const conn = await data!.accept();
      open.add(conn);
      data!.close();
      open.delete(data!);
      data = null;
      return conn;
    };
    const buffer = new Uint8Array(64 * 1024);
    let pending = "";
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      pending += new TextDecoder().decode(buffer.subarray(0, n));
      let end: number;
      while ((end = pending.indexOf("\r\n")) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 2);
        const said = line.startsWith("PASS ") ? "PASS" : line;
        received.push(said);
        silent ||= silentFrom?.test(line) === true;
        if (silent) {
          unanswered.push(said);
          continue;
        }
        cutting = cutAfter?.test(line) === true;
        if (cutting) cutAfter = undefined;
        const [verb] = line.split(" ", 1);
        const arg = line.slice(verb.length + 1);
        switch (verb.toUpperCase()) {
          case "USER":
            await reply("331 password please");
            break;
          case "PASS":
            await reply("230 logged in");
            break;
          case "FEAT":
            await reply(
              `211-Features:\r\n UTF8\r\n SIZE\r\n${
                options.hash ? " HASH SHA-256*\r\n" : ""
              }211 End`,
            );
            break;
          case "PWD":
            await reply(`257 "${cwd}"`);
            break;
          case "CWD":
            cwd = absolute(arg);
            await reply("250 ok");
            break;
          case "PASV": {
            const { listener: dataListener, port: dataPort } = listenOnFreePort();
            data = dataListener;
            open.add(data);
            await reply(`227 Entering Passive Mode (127,0,0,1,${dataPort >> 8},${dataPort & 255})`);
            break;
          }
          case "LIST":
          case "MLSD": {
            await reply("150 listing");
            (await dataConn()).close();
            await reply("226 done");
            break;
          }
          case "STOR": {
            await reply("150 send it");
            const from = await dataConn();
            const path = absolute(arg);
            if (stallsData(path) && !await stalled!.promise) break; // Never read nor answered.
            bytesRead.set(path, 0);
            const chunks: Uint8Array<ArrayBuffer>[] = [];
            const piece = new Uint8Array(256 * 1024);
            for (;;) {
              const slow = slowData?.test(path) === true;
              const n = await from.read(slow ? piece.subarray(0, SLOW_PIECE) : piece);
              if (n === null) break;
              chunks.push(piece.slice(0, n));
              bytesRead.set(path, bytesRead.get(path)! + n);
              if (slow) await new Promise((resolve) => setTimeout(resolve, SLOW_PAUSE_MS));
            }
            open.delete(from);
            try {
              from.close();
            } catch { /* closed as the server stops */ }
            files.set(path, new Uint8Array(await new Blob(chunks).arrayBuffer()));
            await reply("226 stored");
            break;
          }
          case "OPTS":
            await reply(options.hash && /^HASH SHA-256$/i.test(arg) ? "200 ok" : "502 not offered");
            break;
          case "HASH": {
            const file = options.hash ? files.get(absolute(arg)) : undefined;
            const hex = file === undefined ? "" : createHash("sha256").update(file).digest("hex");
            await reply(
              file === undefined
                ? "550 no such file"
                : `213 SHA-256 0-${file.length} ${hex} ${arg}`,
            );
            break;
          }
          case "SIZE": {
            const file = files.get(absolute(arg));
            await reply(file === undefined ? "550 no such file" : `213 ${file.length}`);
            break;
          }
          case "RNFR":
            renameFrom = absolute(arg);
            await reply(files.has(renameFrom) ? "350 ready" : "550 no such file");
            break;
          case "RNTO":
            files.set(absolute(arg), files.get(renameFrom)!);
            files.delete(renameFrom);
            await reply("250 renamed");
            break;
          case "DELE":
            files.delete(absolute(arg));
            await reply("250 deleted");
            break;
          case "MKD":
            await reply(`257 "${absolute(arg)}" made`);
            break;
          case "TYPE":
          case "STRU":
          case "NOOP":
          case "RMD":
          case "SITE":
            await reply("200 ok");
            break;
          case "QUIT":
            await reply("221 bye");
            break;
          default:
            await reply("502 not offered");
        }
      }
    }
  };

  const accepting = (async () => {
    for await (const conn of listener) {
      connections++;
      open.add(conn);
      sessions.push(session(conn).catch(() => {}).finally(() => open.delete(conn)));
    }
  })().catch(() => {});

  return {
    port,
    get connections() {
      return connections;
    },
    received,
    unanswered,
    files,
    bytesRead,
    answerAgain: () => silentFrom = undefined,
    readAgain: () => stalled?.resolve(true),
    readFast: () => slowData = undefined,
    job: (overrides) =>
      transportTestJob("silent-ftp", {
        transfer_method: "ftp",
        remote_host: "127.0.0.1",
        remote_user: "",
        remote_base_path: "/dest",
        verify_transfer: "size",
        ftp_tls: "off",
        ftp_port: port,
      }, overrides),
    async stop() {
      stalled?.resolve(false);
      for (const closer of open) {
        try {
          closer.close();
        } catch { /* closed already */ }
      }
      await accepting;
      await Promise.all(sessions);
    },
  };
}
