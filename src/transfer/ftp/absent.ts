/**
 * Which files are surely not on an FTP server, told by one listing of their folder instead of a
 * `SIZE` each: on a long link each command is a round trip, and a batch of 16 new files into one
 * night folder asked 16 of them before sending.
 *
 * The listing is trusted only to say a name is absent; a name it may hold is asked by `SIZE` as
 * before, so what is found at the destination is judged exactly as it was. A listed name counts
 * as "may hold" when it matches loosely (case, Unicode normalisation and spaces at either end
 * ignored: servers on case-insensitive or normalising file systems), and a listing that cannot be
 * read, or is too long to be read in full by every server, answers nothing. The listing is `NLST`
 * (bare names, nothing to parse) of the folder entered with `CWD`; a folder that cannot be entered
 * is looked for in the listing of the nearest folder above that can (a new night folder: every file
 * below it is absent). Hidden names (`.name`) are always asked: many servers leave them out.
 * A folder with fewer than {@linkcode LISTING_FROM} of the files asked is not listed (a `SIZE`
 * each costs less), nor one found too long to list (remembered by the transport).
 *
 * @module
 */
import { FileInfo } from "basic-ftp";
import { isFtpError } from "./connect.ts";
import type { FtpPeer } from "./remote.ts";
import { joinRemote, parentOf } from "./remote.ts";

/**
 * Fewest files asked in one folder for which its listing is read (fewer: one `SIZE` each). A
 * listing costs about five round trips (`CWD`, `EPSV`, the data connection, `NLST`'s two
 * replies), one or two more over TLS; a `SIZE` one.
 */
export const LISTING_FROM = 8;

/**
 * A listing of this many names or more is not used: some servers cut a long listing short without
 * an error (Pure-FTPd at 2,000 or 10,000 by its `LimitRecursion`), and a name cut off would be
 * taken for absent.
 */
export const MAX_LISTED_NAMES = 1000;

/** Replies to `NLST` that say nothing of the connection: not there, refused, not understood. */
const LISTING_REFUSED = new Set([450, 500, 501, 502, 504, 550]);

/** Most folders above a folder that cannot be entered looked at. */
const MAX_LEVELS_UP = 3;

/** Most folders remembered as too large to list (see {@linkcode absentByListing}). */
const MAX_LARGE_FOLDERS = 1000;

/** A name as compared with a listing's: case, Unicode form and spaces at either end left out. */
function loose(name: string): string {
  return name.normalize("NFC").toLowerCase().trim();
}

/** The last part of `path`. */
function nameOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * The loose names (see {@linkcode loose}) listed in `folder` after entering it, or `null` when it
 * cannot be entered (`entered: false`), listed or the listing is too long (`folder` is then added
 * to `large`). A folder this connection has not swept of leftovers yet is listed as the sweep lists
 * it (`LIST -a`), kept for the sweep (`FtpPeer.listings`): one listing instead of two; its names
 * are used where the listing shows itself whole (see {@linkcode wholeListing}), else `NLST` is
 * asked as well. A connection that breaks throws.
 */
async function listedNames(
  peer: FtpPeer,
  folder: string,
  large: Set<string>,
): Promise<{ entered: boolean; names: Set<string> | null }> {
  const { client } = peer.connection;
  if (large.has(folder)) return { entered: true, names: null };
  const entered = (await client.sendIgnoringError(`CWD ${folder}`)).code < 400;
  peer.entered = entered ? folder : null;
  if (!entered) return { entered: false, names: null };
  const commands = client.availableListCommands;
  const parse = client.parseList;
  let whole = false;
  try {
    let listed: FileInfo[];
    if (!peer.swept.has(folder) && !peer.listings.has(folder)) {
      client.parseList = (raw) => {
        const entries = parse(raw);
        whole = wholeListing(raw, entries.length);
        return entries;
      };
      listed = await client.list();
      peer.listings.set(folder, listed);
      client.parseList = parse;
    }
    if (!whole) {
      client.availableListCommands = ["NLST"];
      // One name a line; a server may give `./name` or `folder/name`, or mark a folder with a `/`.
      client.parseList = (raw) =>
        raw.split(/\r?\n/).map((line) => nameOf(line.replace(/\/+$/, "")))
          .filter((name) => name !== "").map((name) => new FileInfo(name));
      listed = await client.list();
    }
    peer.dataWorked = true;
    if (listed!.length >= MAX_LISTED_NAMES) {
      if (large.size < MAX_LARGE_FOLDERS) large.add(folder);
      return { entered: true, names: null };
    }
    return { entered: true, names: new Set(listed!.map((entry) => loose(entry.name))) };
  } catch (error) {
    // The server's refusal (or an empty folder said by one), or NLST not understood; anything
    // else is the connection's failure (a data connection refused: `425`, TLS's `522`...).
    if (client.closed || !isFtpError(error) || !LISTING_REFUSED.has(error.code)) throw error;
    return { entered: true, names: null };
  } finally {
    client.availableListCommands = commands;
    client.parseList = parse;
  }
}

/**
 * Whether a `LIST -a` listing (`raw`, of which the library read `parsed` entries) shows every name
 * of its folder: it lists the folder itself (`.` or `..`: the `-a` was taken as an option, not as
 * a name to list, and hidden names are shown) and the library read every other line (a line it
 * cannot read would be a name taken for absent).
 */
function wholeListing(raw: string, parsed: number): boolean {
  const lines = raw.split(/\r?\n/).filter((line) =>
    line.trim() !== "" && !line.startsWith("total")
  );
  const selves = lines.filter((line) => /\s\.\.?$/.test(line)).length;
  return selves > 0 && parsed + selves === lines.length;
}

/**
 * The `paths` (absolute, on the server) that are surely not there, by one listing of each
 * folder that holds at least {@linkcode LISTING_FROM} of them (see the module doc), none above
 * `base`. `large`: folders found too large to list, not listed again. A connection that breaks
 * throws.
 */
export async function absentByListing(
  peer: FtpPeer,
  paths: string[],
  large: Set<string>,
  base: string,
): Promise<Set<string>> {
  // Never a folder above `base`: not the job's, and maybe large (`/tmp`, `/`).
  const top = base.replace(/\/+$/, "") || "/";
  const within = (folder: string) => folder === top || folder.startsWith(joinRemote(top, ""));
  const byFolder = new Map<string, string[]>();
  for (const path of paths) {
    const folder = parentOf(path);
    const inFolder = byFolder.get(folder);
    if (inFolder === undefined) byFolder.set(folder, [path]);
    else inFolder.push(path);
  }
  const absent = new Set<string>();
  for (const [folder, asked] of byFolder) {
    if (asked.length < LISTING_FROM || large.has(folder)) continue;
    // `listed`: the folder listed, `folder` or the nearest above it that could be entered;
    // `below`: the folder on the path under it, which could not be.
    let listed = folder;
    let below = folder;
    let looked = await listedNames(peer, folder, large);
    for (let up = 0; !looked.entered && up < MAX_LEVELS_UP && within(parentOf(below)); up++) {
      listed = parentOf(below);
      looked = await listedNames(peer, listed, large);
      if (!looked.entered) below = listed;
    }
    const names = looked.names;
    if (!looked.entered || names === null) continue;
    if (listed !== folder) {
      // All below are absent unless the folder listed may hold `below`.
      const next = nameOf(below);
      if (next.startsWith(".") || names.has(loose(next))) continue;
      for (const path of asked) absent.add(path);
      continue;
    }
    for (const path of asked) {
      const name = nameOf(path);
      if (!name.startsWith(".") && !names.has(loose(name))) absent.add(path);
    }
  }
  return absent;
}

/**
 * Ask over `peer` about each of `destinations` (below `base`); a file that is not there (550, or
 * among those `absent` gives), or whose name FTP cannot carry (never delivered), is `null`.
 */
export async function askEach<T>(
  peer: FtpPeer,
  base: string,
  destinations: string[],
  signal: AbortSignal,
  ask: (peer: FtpPeer, path: string) => Promise<T | null>,
  absent?: (peer: FtpPeer, paths: string[]) => Promise<Set<string>>,
): Promise<Map<string, T | null>> {
  const answers = new Map<string, T | null>();
  const sayable = destinations.filter((destination) => !/[\r\n\0]/.test(destination));
  const none = await absent?.(peer, sayable.map((d) => joinRemote(base, d))) ?? new Set();
  for (const destination of destinations) {
    signal.throwIfAborted();
    if (/[\r\n\0]/.test(destination)) {
      answers.set(destination, null); // Never delivered (see badName).
      continue;
    }
    const path = joinRemote(base, destination);
    try {
      answers.set(destination, none.has(path) ? null : await ask(peer, path));
    } catch (error) {
      // 550: no such file (or not a plain file); anything else is a real failure.
      if (!isFtpError(error) || error.code !== 550) throw error;
      answers.set(destination, null);
    }
  }
  return answers;
}
