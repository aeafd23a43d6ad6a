/**
 * The delivery steps of one `ftp` batch (see `deliver.ts`) over one connection, a file at a time:
 * the batch's upload folder in each destination folder, made fresh (`MKD` fails on any name that
 * exists), each file uploaded into it, verified and renamed into place, the upload folders
 * removed at the end.
 *
 * @module
 */
import {
  classifyFtpError,
  commandTooLong,
  type FtpJob,
  ftpServerName,
  isFtpError,
} from "./connect.ts";
import { checkSource, type DeliverySteps } from "../deliver.ts";
import {
  badName,
  ensureFolders,
  finishDelivery,
  type FtpDelivery,
  type FtpLink,
  type FtpPeer,
  joinRemote,
  parentOf,
  recheckFolder,
  uploadError,
  withSource,
} from "./remote.ts";
import { sweepLeftovers } from "./leftovers.ts";
import { type JobOwners, uploadFolderName } from "../temp_name.ts";
import type { Throttle } from "../throttle.ts";
import { uploadDelivery } from "./upload.ts";
import { folderRefused } from "./space_probe.ts";
import type { FtpPool } from "./pool.ts";
import { NoAnswer, silenceOf, type UploadStalls } from "./no_answer.ts";

/** Folders remembered in `FtpBatch.leftIn` (a later batch into one of the others sweeps it). */
const MAX_FOLDERS_LEFT = 1000;

/** What the steps of a batch use of their transport (see `FtpTransport`). */
export interface FtpBatch {
  job: FtpJob;
  /** The job's parts of temporary names, its own and the earlier (see `temp_name.ts`). */
  owners: JobOwners;
  pool: FtpPool;
  /** Paces all uploads together at `bandwidth_limit` (none without one). */
  throttle: Throttle | null;
  stalls: UploadStalls;
  /** Upload folders of batches under way (never swept). */
  inUse: Set<string>;
  /** Destination folders holding an upload folder a batch could not remove: swept later. */
  leftIn: Set<string>;
  /** Whether `remote_base_path` is made where it is missing (not once files arrived there). */
  makesBase: boolean;
}

/**
 * The delivery steps over one connection (`link`; a connection that
 * breaks is replaced for the files after it, one whose server stopped
 * answering fails them all), a file at a time.
 */
export function batchSteps(
  link: FtpLink,
  base: string,
  batch: FtpBatch,
): DeliverySteps<FtpDelivery> {
  /** Run `step` for `delivery`; a failure fails it (and a broken connection is dropped). */
  const attempt = async (
    delivery: FtpDelivery,
    signal: AbortSignal,
    step: (peer: FtpPeer) => Promise<void>,
  ): Promise<void> => {
    if (link.silence !== null) {
      // Waited for once: the batch ends, no file waits for that server again.
      delivery.error = withSource(delivery.item, link.silence);
      return;
    }
    let peer = null as FtpPeer | null;
    try {
      await batch.pool.use(link, signal, (used) => step(peer = used));
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const failure = silenceOf(peer?.connection.client) ??
        (peer === null
          ? classifyFtpError(error, batch.job, "connect")
          : uploadError(batch.job, peer, error));
      if (failure instanceof NoAnswer) link.silence = failure;
      delivery.error = withSource(delivery.item, failure);
      if (peer !== null && delivery.uploaded && !peer.connection.client.closed) {
        await peer.connection.client.sendIgnoringError(`DELE ${delivery.tempPath}`);
        delivery.uploaded = false;
      }
      if (link.peer?.connection.client.closed) {
        batch.pool.drop(link.peer);
        link.peer = null;
      }
    }
  };
  /** The batch's upload folder in each destination folder, and whether it was made. */
  const uploadFolders = new Map<string, { path: string; made: boolean }>();
  /** Make `folder` (checked again once a batch) and the batch's upload folder in it. */
  const makeFolder = async (peer: FtpPeer, folder: string): Promise<void> => {
    const upload = uploadFolders.get(folder)!;
    // Once a batch: the folder may have changed since this connection knew it.
    if (!upload.made) await recheckFolder(peer, base, folder);
    await ensureFolders(peer, base, folder, { makeBase: batch.makesBase, job: batch.job });
    await sweepLeftovers(peer, folder, batch.owners, batch.inUse);
    if (upload.made) return;
    // MKD fails on any name that exists: nothing planted there is written through.
    const made = await peer.connection.client.sendIgnoringError(`MKD ${upload.path}`);
    if (made.code === 500 && /too long/i.test(made.message)) {
      throw commandTooLong(made.message, upload.path);
    }
    if (made.code >= 400) {
      const what = `cannot make the upload folder ${upload.path} (${made.message.trim()})`;
      const advice = `check that the login may write in ${folder}; anything that exists ` +
        "under that name is left alone, and the next attempt takes another name";
      // In the destination folder itself (no folder below it): the login may not write there.
      const inBase = folder === parentOf(joinRemote(base, "x"))
        ? { path: base, server: ftpServerName(batch.job), fromTo: batch.job.fromTo }
        : undefined;
      throw await folderRefused(peer.connection.client, folder, what, advice, "retry", inBase);
    }
    upload.made = true;
  };
  const upload = async (peer: FtpPeer, delivery: FtpDelivery, signal: AbortSignal) => {
    delivery.read?.destroy();
    const { client } = peer.connection;
    const stalls = batch.stalls.uploading(link);
    await uploadDelivery(client, delivery, batch.job, batch.throttle, signal, stalls);
    peer.dataWorked = true;
  };
  /** The files uploaded again into folders made again (once each). */
  const remade = new Set<FtpDelivery>();
  /**
   * Run `step`, `delivery`'s upload or (`finishing`) its verify and rename. Where it fails as the
   * batch's upload folder (`put`) or the copy in it (`finish`) is gone, removed meanwhile with the
   * night folder (an archive's clean-up, a night moved away), the folders are made again and the
   * file uploaded (and finished) again, once: not the server's bare refusal for a folder removed.
   */
  const remakingGone = async (
    peer: FtpPeer,
    delivery: FtpDelivery,
    signal: AbortSignal,
    finishing: boolean,
    step: () => Promise<void>,
  ): Promise<void> => {
    try {
      return await step();
    } catch (error) {
      const { client } = peer.connection;
      const folder = parentOf(delivery.finalPath);
      const uploadFolder = uploadFolders.get(folder)!;
      const refused = isFtpError(error) || isFtpError((error as { cause?: unknown })?.cause);
      if (!refused || client.closed || signal.aborted || remade.has(delivery)) throw error;
      peer.entered = null;
      const there = (command: string, path: string) =>
        client.sendIgnoringError(`${command} ${path}`).then((reply) => reply.code < 400);
      const folderThere = await there("CWD", uploadFolder.path);
      // Its copy, for the finish: a folder made again meanwhile (for another file) holds none.
      const copyThere = folderThere && (!finishing || await there("SIZE", delivery.tempPath));
      if (copyThere) throw error;
      remade.add(delivery);
      uploadFolder.made &&= folderThere;
      await makeFolder(peer, folder);
      await upload(peer, delivery, signal);
      if (!finishing) return;
      checkSource(delivery);
      if (delivery.error !== null) throw delivery.error;
      await finishDelivery(peer, delivery, batch.job);
    }
  };
  return {
    place: (item) => {
      const bad = badName(item, base);
      if (bad !== null) throw bad;
      const finalPath = joinRemote(base, item.destination);
      const folder = parentOf(finalPath);
      let upload = uploadFolders.get(folder);
      if (upload === undefined) {
        upload = { path: joinRemote(folder, uploadFolderName(batch.owners.owner)), made: false };
        uploadFolders.set(folder, upload);
        batch.inUse.add(upload.path);
      }
      const name = finalPath.slice(finalPath.lastIndexOf("/") + 1);
      return { finalPath, tempPath: joinRemote(upload.path, name) };
    },
    track: (delivery) => ({ ...delivery, uploaded: false, read: null }),
    makeFolders: async (deliveries, signal) => {
      for (const delivery of deliveries) {
        const folder = parentOf(delivery.finalPath);
        await attempt(delivery, signal, (peer) => makeFolder(peer, folder));
      }
    },
    put: async (deliveries, signal) => {
      for (const delivery of deliveries) {
        await attempt(delivery, signal, (peer) => {
          return remakingGone(peer, delivery, signal, false, () => upload(peer, delivery, signal));
        });
      }
    },
    finish: async (deliveries, signal) => {
      for (const delivery of deliveries) {
        if (delivery.error !== null) {
          // A copy whose source changed meanwhile (checked after the uploads) is removed.
          if (delivery.uploaded && link.peer && !link.peer.connection.client.closed) {
            await link.peer.connection.client.sendIgnoringError(`DELE ${delivery.tempPath}`);
          }
          continue;
        }
        await attempt(delivery, signal, (peer) => {
          const finishing = () => finishDelivery(peer, delivery, batch.job);
          return remakingGone(peer, delivery, signal, true, finishing);
        });
      }
    },
    end: async (deliveries) => {
      for (const delivery of deliveries) delivery.read?.destroy();
      // Every copy was renamed out or removed: the upload folders go (a leftover is swept).
      const peer = link.peer;
      for (const upload of uploadFolders.values()) {
        // Not removed (a copy the cut connection could not delete is in it): swept later.
        const removed = upload.made && peer !== null && !peer.connection.client.closed
          ? await peer.connection.client.sendIgnoringError(`RMD ${upload.path}`).catch(() => null)
          : null;
        if (
          upload.made && (removed?.code ?? 550) >= 400 && batch.leftIn.size < MAX_FOLDERS_LEFT
        ) {
          batch.leftIn.add(parentOf(upload.path));
        }
        batch.inUse.delete(upload.path);
      }
    },
  };
}
