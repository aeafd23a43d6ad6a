/**
 * Jobs whose folders must be kept apart, refused before the start (see `start_checks.ts`):
 * destinations that would lose or endlessly repeat copies (two jobs sending into one folder, a
 * destination on this machine, local or over SSH, where the job's own watch finds its copies
 * again, jobs whose copies go round from one watch folder to the next and back), and clean-up
 * that would take sources away from another job, or move them into a watch folder.
 *
 * @module
 */
import { mayBeOneFolder } from "../config/destination_folder.ts";
import { jobKeyPlace } from "../config/key_lines.ts";
import type { Config, JobConfig } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import { relativeTo } from "../layout/watch_folder_paths.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import type { FolderIds, RealPath } from "./start_checks.ts";

/**
 * Refuse destinations that would lose or endlessly repeat copies: two jobs
 * sending into one folder (a file of one would replace the other's file of
 * the same name there, without a word), a destination on this machine where
 * the job's own watch finds its copies again (each sent again, without end),
 * and jobs that send into each other's watch folders here, round to the first.
 *
 * @throws {ConfigError} naming the jobs and folders, and what to do
 */
export function assertDestinationsApart(config: Config, realPathOf: RealPath): void {
  // Asked of every pair of jobs (copy rounds): each path resolved once.
  const known = new Map<string, string>();
  const realPathSoFar = (path: string) =>
    known.get(path) ?? known.set(path, realPathOf(path)).get(path)!;
  const problems: string[] = [];
  const places = new Map<string, JobConfig>();
  for (const [index, job] of config.jobs.entries()) {
    const place = destinationPlace(job, realPathSoFar);
    const other = places.get(place);
    if (other !== undefined) {
      problems.push(
        `${jobKeyPlace(config, index, "remote_base_path")}: job ${other.name} sends into ` +
          `${describePlace(other)} too, where a file of one would replace the other's file of ` +
          "the same name without a word; give each job a folder of its own (for example " +
          `${job.remote_base_path.replace(/[/\\]+$/, "")}/${job.name})`,
      );
    }
    places.set(place, job);
    if (!copiesHere(job)) continue;
    const problem = copiesWatched(job, realPathSoFar);
    if (problem) problems.push(`${jobKeyPlace(config, index, problem.key)}: ${problem.message}`);
  }
  problems.push(...copyRounds(config, realPathSoFar));
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file: config.file });
}

/**
 * Whether `job`'s copies land on this machine, in a folder its paths can be compared with: a
 * local copy, or scp/rsync to a loopback address, `localhost` or this machine's name with an
 * absolute `remote_base_path` (whatever the port: a tunnel to another machine would have to lead
 * to a folder of the same path inside this one's watch folder).
 */
function copiesHere(job: JobConfig): boolean {
  if (job.transfer_method === "local") return true;
  if (job.transfer_method === "ftp" || !job.remote_base_path.startsWith("/")) return false;
  const host = job.remote_host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host)) return true;
  return host === thisMachine();
}

/** This machine's name, lower case ("" where it may not be asked). */
function thisMachine(): string {
  try {
    return Deno.hostname().toLowerCase();
  } catch {
    return ""; // No permission to ask (a test's own set).
  }
}

/** Where a job's copies go, the same string for every job that sends there. */
function destinationPlace(job: JobConfig, realPathSoFar: RealPath): string {
  if (job.transfer_method === "local") return `local:${realPathSoFar(job.remote_base_path)}`;
  // The folder as the ledger's destination identity spells it, with `..` taken out too.
  const base = mayBeOneFolder(job);
  // This machine's names alike (localhost, 127.0.0.1), its ports apart (each may be a tunnel to
  // another machine; one to this machine's sshd is not told from a local job's folder).
  const host = copiesHere(job) ? "this machine" : job.remote_host.trim().toLowerCase();
  // A base path that is not absolute is one per account (its home, or the FTP account's root).
  const user = job.transfer_method === "ftp" || !base.startsWith("/")
    ? `${job.remote_user.trim()}@`
    : "";
  const port = job.transfer_method === "ftp"
    ? `ftp:${job.ftp_port ?? 21}`
    : `ssh:${job.ssh_port ?? 22}`;
  return `${port}//${user}${host}/${base}`;
}

/** For a job that sends over SSH to this machine: ` (on <host>, this machine)`. */
function onHost(job: JobConfig): string {
  return job.transfer_method === "local" ? "" : ` (on ${job.remote_host.trim()}, this machine)`;
}

/** The destination folder of `job` as messages name it. */
function describePlace(job: JobConfig): string {
  return job.transfer_method === "local"
    ? job.remote_base_path
    : `${job.remote_host.trim()}:${job.remote_base_path}`;
}

/**
 * Where the copies `sender` makes land for `watcher` (whose watch finds and
 * sends them): `inside` its watch folder, where its watch enters, or its
 * watch folder is a `night` folder of the destination; `null` when apart.
 */
function landsIn(
  sender: JobConfig,
  watcher: JobConfig,
  realPathSoFar: RealPath,
): { how: "inside"; rel: string } | { how: "night" } | null {
  if (!copiesHere(sender)) return null;
  const base = realPathSoFar(sender.remote_base_path);
  const watch = realPathSoFar(watcher.watch_path);
  const baseInWatch = relativeTo(watch, base);
  if (baseInWatch !== null) {
    const filter = createFileFilter(watcher, { skipLog: null });
    const segments = baseInWatch === "" ? [] : baseInWatch.split("/");
    const entered = segments.every((_, i) =>
      filter.dirSkip(segments.slice(0, i + 1).join("/")) === null
    );
    if (entered) return { how: "inside", rel: baseInWatch };
  }
  const watchInBase = relativeTo(base, watch);
  return watchInBase !== null && /^\d{8}(\/|$)/.test(watchInBase) ? { how: "night" } : null;
}

/**
 * Why a local destination cannot be used with its watch folder: inside it
 * where the watch would enter (every copy would be found and sent again), or
 * a watch folder that is a night folder of the destination (the copies of
 * that night land in it); `null` when it can.
 */
function copiesWatched(
  job: JobConfig,
  realPathSoFar: RealPath,
): { key: string; message: string } | null {
  const lands = landsIn(job, job, realPathSoFar);
  const [base, watch] = [realPathSoFar(job.remote_base_path), realPathSoFar(job.watch_path)];
  if (lands?.how === "inside") {
    return {
      key: "remote_base_path",
      message: `${base + onHost(job)} is inside its watch_path ${watch}, so every copy would be ` +
        "found there and sent again, without end; choose a destination outside the watch folder" +
        (lands.rel === ""
          ? ""
          : ` (or leave it out with ${excluding(`${literalGlob(lands.rel)}/**`)})`),
    };
  }
  if (lands?.how === "night") {
    return {
      key: "watch_path",
      message: `${watch} is a night folder of its remote_base_path ${base}, where the copies of ` +
        "that night are written, so each would be sent again; choose a watch folder outside the " +
        "destination",
    };
  }
  return null;
}

/**
 * Local jobs whose copies land in the next one's watch folder, round to the
 * first (job a sends into b's watch folder, b into a's): every file would be
 * copied round without end. One line per round, at its first job.
 */
function copyRounds(config: Config, realPathSoFar: RealPath): string[] {
  const jobs = config.jobs;
  const next = jobs.map((sender, i) =>
    jobs.flatMap((watcher, j) =>
      i !== j && landsIn(sender, watcher, realPathSoFar) && !apartByExtension(sender, watcher)
        ? [j]
        : []
    )
  );
  const problems: string[] = [];
  const said = new Set<string>();
  for (const [first] of jobs.entries()) {
    // The shortest way from `first`'s watchers back to `first`, if any (breadth first).
    const cameFrom = new Map<number, number>(next[first].map((j) => [j, first]));
    const queue = [...next[first]];
    while (queue.length > 0 && !cameFrom.has(first)) {
      const at = queue.shift()!;
      for (const j of next[at]) if (!cameFrom.has(j)) (cameFrom.set(j, at), queue.push(j));
    }
    if (!cameFrom.has(first)) continue;
    const round = [first];
    for (let at = cameFrom.get(first)!; at !== first; at = cameFrom.get(at)!) round.unshift(at);
    round.unshift(first);
    round.pop();
    const key = [...round].sort((a, b) => a - b).join(",");
    if (said.has(key)) continue;
    said.add(key);
    const steps = round.map((i, n) => {
      const to = jobs[round[(n + 1) % round.length]];
      return `job ${jobs[i].name} sends into ${
        jobs[i].remote_base_path
      }, which job ${to.name} watches`;
    });
    problems.push(
      `${jobKeyPlace(config, first, "remote_base_path")}: ${steps.join("; ")}: every file would ` +
        "be copied round from one to the next without end; choose destinations outside the other " +
        "jobs' watch folders (or leave them out with exclude_patterns, or give the jobs patterns " +
        'for different file name endings, e.g. "*.fits" and "*.log")',
    );
  }
  return problems;
}

/**
 * Whether no file can be both jobs': each lists only patterns of the form
 * `*.ext` (in any folder too: `**` and a slash before it), and no ending is
 * in both lists.
 */
export function apartByExtension(a: JobConfig, b: JobConfig): boolean {
  // Two case-sensitive lists share a file only through the same spelling; a caseless list
  // matches every spelling of its endings.
  const caseless = !(a.case_sensitive_patterns && b.case_sensitive_patterns);
  const endings = (job: JobConfig) => {
    const found = job.file_patterns.map((p) => /^(?:\*\*\/)?\*(\.[^*?[\]{}()!/\\]+)$/.exec(p)?.[1]);
    if (found.some((ending) => ending === undefined)) return null;
    return found.map((ending) => caseless ? ending!.toLowerCase() : ending!);
  };
  const [ea, eb] = [endings(a), endings(b)];
  return ea !== null && eb !== null && !ea.some((ending) => eb.includes(ending));
}

/** The `exclude_patterns` line that leaves out `glob`, as the config file (and `--set`) takes it. */
export function excluding(glob: string): string {
  return `exclude_patterns: ${JSON.stringify([glob])}`;
}

/** A glob that matches `name` alone: `[1]`, `*`, `{a,b}` ... in it match themselves. */
export function literalGlob(name: string): string {
  return name.replace(/[\\*?[\]{}()!+@|]/g, "\\$&");
}

/**
 * Refuse clean-up that would remove what it must not: an archive folder inside a watch folder
 * (moved files would be sent again) or a watch folder inside an archive folder, and a job that
 * removes sources from a folder another job watches too, where a file may be that job's (it would
 * be gone before that job sent it). Folders are compared by their real paths, and by their
 * identities (`idsOf`: a folder mounted at another path too, `mount --bind`, is the same folder).
 *
 * @throws {ConfigError} naming each job, its key's line and both folders
 */
export function assertCleanupSafe(
  config: Config,
  realPathSoFar: RealPath,
  idsOf: FolderIds = () => [],
): void {
  const problems: string[] = [];
  const watches = config.jobs.map((job) => realPathSoFar(job.watch_path));
  // One inside the other, by their real paths, or where a folder is mounted at another path too.
  const nested = (a: string, b: string, [x, y] = [idsOf(a), idsOf(b)]) =>
    relativeTo(realPathSoFar(a), realPathSoFar(b)) !== null ||
    relativeTo(realPathSoFar(b), realPathSoFar(a)) !== null ||
    (x.length > 0 && y.length > 0 && (y.includes(x[0]) || x.includes(y[0])));
  for (const [index, job] of config.jobs.entries()) {
    if (job.after_transfer === "keep") continue;
    const watch = watches[index];
    if (job.after_transfer === "move") {
      const archive = realPathSoFar(job.archive_path);
      if (nested(job.archive_path, job.watch_path)) {
        problems.push(
          `${jobKeyPlace(config, index, "archive_path")}: ${archive} and watch_path ${watch} ` +
            "must not contain each other (moved files would be found again); choose a folder " +
            "outside the watch folder",
        );
      }
    }
    const other = config.jobs.findIndex((o, i) =>
      i !== index && nested(o.watch_path, job.watch_path) && !apartByExtension(job, o)
    );
    if (other < 0) continue;
    problems.push(
      `${jobKeyPlace(config, index, "after_transfer")}: "${job.after_transfer}" would take ` +
        `sources away from job ${config.jobs[other].name}, which watches ${watches[other]} too, ` +
        "before it has sent them; give the jobs watch folders of their own, patterns for " +
        'different file name endings (e.g. "*.fits" and "*.log"), or keep the sources ' +
        "(after_transfer: keep)",
    );
  }
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file: config.file });
}
