/**
 * A file at the destination that is not this daemon's copy of the source (the ledger gives the
 * source no copy under that name: `TransferItem.noReplace`) is never replaced. When it holds the
 * source's bytes the source counts as arrived, left as it is; otherwise the item fails, nothing
 * written over it (`occupied: "other"`), and the pipeline sends it beside.
 *
 * The bytes are judged the same for every method ({@linkcode sameFile}), whatever
 * `verify_transfer` says: the same size and the same SHA-256 (over SSH, where the checked copy is
 * at hand, the bytes of the two files compared). The size alone proves nothing of a file someone
 * else wrote: the frames of one camera all have the same size.
 *
 * `local` and `ftp` look at the final names of the batch's `noReplace` items before sending
 * ({@linkcode sendKeepingOthers}, one look per batch); `scp` and `rsync` in the batch's finishing
 * call (`ssh/finish.ts`), without a call of their own. A folder under the final name, which the
 * look does not see (no file there), is another's too once putting the copy there fails: `local`'s
 * {@linkcode NameTaken} (or EISDIR) here, the server's refusal in `ftp/remote.ts`.
 *
 * A file put under the final name after the look (another daemon sending there too) is not
 * replaced by `local` or the SSH methods either. `local` puts such a copy in place with a hard
 * link, which never replaces a name, and says {@linkcode NameTaken} when the name is taken; that
 * file is then judged as the look judges one (where links cannot be made, the copy is renamed into
 * place once the name is still free, the window of its two calls left open). `scp` and `rsync`
 * rename it with `mv -n`, and a copy left where it was is judged on the server as the finishing
 * call's look judges a file there. FTP's rename has no such form: a file that comes there during
 * the upload is replaced.
 *
 * @module
 */
import { TransferError } from "../errors.ts";
import { hashSource } from "./source.ts";
import type { TransferItem, TransferOutcome, Transport } from "./transport.ts";

/**
 * A copy not put in place: `path`, its final name, was taken after the look (see the module doc);
 * `file`: by a regular file (judged as the look judges one), else by a folder, a link...
 */
export class NameTaken extends TransferError {
  override name = "NameTaken";
  constructor(readonly path: string, readonly file: boolean) {
    super(`${path} was taken by another file while the copy was made; it is not replaced`, "retry");
  }
}

/** Whether a file of `size` bytes and `sha256` (where known) holds the bytes of `item`. */
export async function sameFile(
  item: TransferItem,
  held: { size: number; sha256?: string | null },
): Promise<boolean> {
  if (held.size !== item.size || !held.sha256) return false;
  return await hashSource(item).then((ours) => ours === held.sha256, () => false);
}

/** The error of an item whose final name holds another file (`where` it is, for the user). */
export function occupiedError(item: TransferItem, where: string): TransferError {
  return new TransferError(
    `Cannot send ${item.source}: ${where} holds another file, not a copy of it sent by this ` +
      "job; it is not replaced",
    "retry",
  );
}

/**
 * `send` the items whose final name holds nothing, or is the source's own copy; the outcome of
 * each `noReplace` item whose final name holds a file, without sending it (see the module doc).
 * A destination that cannot be asked fails those items, as `lookFailed` says (the method's own
 * words for a server that cannot be reached, a login refused...; by default tried again).
 */
export async function sendKeepingOthers(
  transport: Pick<Transport, "destinationSizes" | "destinationSha256" | "describeTarget">,
  items: TransferItem[],
  signal: AbortSignal,
  send: (items: TransferItem[]) => Promise<TransferOutcome[]>,
  lookFailed?: (item: TransferItem, error: unknown) => TransferError,
): Promise<TransferOutcome[]> {
  const asked = items.filter((item) => item.noReplace);
  if (asked.length === 0) return send(items);
  let held = new Map<TransferItem, TransferOutcome>();
  try {
    held = await look(transport, asked, signal);
  } catch (error) {
    signal.throwIfAborted();
    const reason = error instanceof Error ? error.message : String(error);
    for (const item of asked) {
      held.set(item, {
        item,
        error: lookFailed?.(item, error) ?? new TransferError(
          `Cannot send ${item.source}: cannot look whether ${
            transport.describeTarget(item.destination)
          } holds another file (${reason})`,
          "retry",
          { cause: error },
        ),
      });
    }
  }
  const rest = items.filter((item) => !held.has(item));
  const sent = rest.length === 0 ? [] : await send(rest);
  // A name a file took after the look: that file judged now (one gone since: the item is retried).
  const late = sent.filter((outcome) => outcome.item.noReplace && takenBy(outcome.error)?.file);
  const judged = late.length === 0
    ? new Map<TransferItem, TransferOutcome>()
    : await look(transport, late.map((outcome) => outcome.item), signal).catch(() => new Map());
  // A folder under the name (no file, so not seen by the look: its rename failed) is another's too.
  const outcomes = new Map(sent.map((outcome) => [
    outcome.item,
    judged.get(outcome.item) ??
      (outcome.item.noReplace &&
          (folderAtName(outcome.error) || takenBy(outcome.error)?.file === false)
        ? { ...outcome, occupied: "other" as const }
        : outcome),
  ]));
  return items.map((item) => held.get(item) ?? outcomes.get(item)!);
}

/** The outcome of each of `asked` whose final name holds a file (see the module doc). */
async function look(
  transport: Pick<Transport, "destinationSizes" | "destinationSha256" | "describeTarget">,
  asked: TransferItem[],
  signal: AbortSignal,
): Promise<Map<TransferItem, TransferOutcome>> {
  const held = new Map<TransferItem, TransferOutcome>();
  const sizes = await transport.destinationSizes!(asked.map((item) => item.destination), signal);
  const taken = asked.filter((item) => (sizes.get(item.destination) ?? null) !== null);
  const hashes = taken.some((item) => sizes.get(item.destination) === item.size)
    ? await transport.destinationSha256!(taken.map((item) => item.destination), signal)
    : new Map<string, string | null>();
  for (const item of taken) {
    const size = sizes.get(item.destination)!;
    const same = await sameFile(item, { size, sha256: hashes.get(item.destination) });
    const where = transport.describeTarget(item.destination);
    held.set(
      item,
      same
        ? { item, error: null, occupied: "same" }
        : { item, error: occupiedError(item, where), occupied: "other" },
    );
  }
  return held;
}

/** The {@linkcode NameTaken} `error` is, or has as a cause. */
function takenBy(error: unknown): NameTaken | undefined {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof NameTaken) return cause;
  }
  return undefined;
}

/** Whether `error` (or a cause of it) says a folder has the name a copy was renamed to (EISDIR). */
function folderAtName(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof Deno.errors.IsADirectory || /\(os error 21\)/.test(cause.message)) {
      return true;
    }
  }
  return false;
}
