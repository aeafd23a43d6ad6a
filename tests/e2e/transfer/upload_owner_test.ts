/**
 * Whose unfinished copies a transport sweeps, for every method (`local`'s temporary copies, the
 * upload folders of scp, rsync and ftp): two daemons (two installs, each with its own ledger)
 * sending from the same watch folder path to the same destination folder under one host name
 * (acquisition PCs cloned from one image) never sweep each other's; an install's own leftovers
 * are swept after a restart and after its damaged ledger was set aside, and those of the earlier
 * naming (by host name) once nothing was written in them for long (over FTP, as `MDTM` says of
 * their files and the listing of their folder), never a copy dated as an old source while its
 * folder was written moments ago.
 * The scp and rsync sweep that dropping a kept copy starts (a file gone by a restart), with
 * copies resumed as by default, spares another install's upload folder under way as well.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import type { Ledger } from "../../../src/ledger/ledger.ts";
import type { Transport } from "../../../src/transfer/transport.ts";
import {
  hostJobOwner,
  jobOwners,
  tempNameFor,
  uploadFolderName,
} from "../../../src/transfer/temp_name.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile } from "../../helpers/files.ts";
import {
  damageLedger,
  type Destinations,
  makeItem,
  type Method,
  openInstall,
  plantUploadFolder,
  startDestinations,
} from "../../helpers/transports.ts";

const never = new AbortController().signal;
const NIGHT = "20240401";

/** One install of the daemon (see `openInstall`). */
type Install = { ledger: Ledger; transport: Transport };

/** What a scenario gets from {@linkcode eachMethod}, for one method. */
interface OwnerCase {
  /** The method under test. */
  method: Method;
  /** Sources here; each install's ledger and runtime folder below it (see `openInstall`). */
  root: string;
  /** The destination folder, on this machine, with the night folder the scenarios send into. */
  dst: string;
  /** The same job on every PC: watch folder path, host name, login and destination folder. */
  job: JobConfig;
  /** Start (or restart) the install of PC `pc`. */
  open(pc: string): Promise<Install>;
  /** This install's id in the names of its unfinished copies (see `jobOwners`). */
  ownerOf(install: Install): string;
  /**
   * Leave one unfinished copy of `owner`'s of `name` (default `frame.fits`) in the night folder,
   * written `at` (`null`: now): a temporary copy (`local`) or an upload folder holding one (the
   * others). What it adds to the destination's listing.
   */
  plant(owner: string, at: Date | null, name?: string): Promise<Listing>;
}

/** Files and folders below a destination, as paths relative to it. */
interface Listing {
  files: string[];
  folders: string[];
}

/**
 * Run `scenario` once for every method (a step each), or only for `methods`, against the servers
 * of `startDestinations`; each with its own destination folder, and a job with `overrides`
 * (default: no resuming, so every leftover of its own is swept as soon as seen).
 */
async function eachMethod(
  t: Deno.TestContext,
  scenario: (c: OwnerCase) => Promise<void>,
  { methods, overrides = { resume_partial_hours: 0 } }: {
    methods?: Method[];
    overrides?: Partial<JobConfig>;
  } = {},
): Promise<void> {
  const destinations = await startDestinations();
  try {
    for (const fixture of destinations.fixtures) {
      if (methods !== undefined && !methods.includes(fixture.method)) continue;
      await t.step(fixture.method, async () => {
        const root = await Deno.makeTempDir({ prefix: "itx-owner-" });
        const dst = await fixture.makeDestination();
        try {
          await Deno.mkdir(join(dst, NIGHT));
          await fixture.own(join(dst, NIGHT));
          const job = fixture.job(dst, { watch_path: "/data/cam", ...overrides });
          const plant = planter(fixture.method, destinations, dst);
          await scenario({
            method: fixture.method,
            root,
            dst,
            job,
            open: (pc) => openInstall(job, root, pc),
            ownerOf: (install) => jobOwners(job, install.ledger).owner,
            plant,
          });
        } finally {
          await Deno.remove(root, { recursive: true }).catch(() => {});
          await Deno.remove(dst, { recursive: true }).catch(() => {});
        }
      });
    }
  } finally {
    await destinations.stop();
  }
}

/** How `method`'s unfinished copies stand in `dst`'s night folder (see `OwnerCase.plant`). */
function planter(
  method: Method,
  destinations: Destinations,
  dst: string,
): (owner: string, at: Date | null, name?: string) => Promise<Listing> {
  const night = join(dst, NIGHT);
  if (method === "local") {
    return async (owner, at, name = "frame.fits") => {
      const copy = join(night, tempNameFor(name, owner));
      await Deno.writeFile(copy, randomBytes(2048), { mode: 0o600 });
      if (at !== null) await Deno.utime(copy, at, at);
      return { files: [relative(dst, copy)], folders: [] };
    };
  }
  // A private folder of the sshd account's; one of the FTP login's that it lists.
  const [server, mode] = method === "ftp"
    ? [destinations.vsftpd, 0o755]
    : [destinations.sshd, 0o700];
  return async (owner, at, name = "frame.fits") => {
    const folder = await plantUploadFolder(night, uploadFolderName(owner), at, server, mode, name);
    const rel = relative(dst, folder);
    return { files: [`${rel}/${name}`], folders: [rel] };
  };
}

/** Every file and folder below `dst`. */
async function listing(dst: string): Promise<Listing> {
  return { files: await listFiles(dst), folders: await listFolders(dst) };
}

/** The listing of a destination holding the sent `copies` and the unfinished copies `kept` whole. */
function only(copies: string[], kept: Listing[]): Listing {
  return {
    files: [...copies, ...kept.flatMap((copy) => copy.files)].sort(),
    folders: [NIGHT, ...kept.flatMap((copy) => copy.folders)].sort(),
  };
}

/** Close every install in `installs`. */
async function closeAll(...installs: Install[]): Promise<void> {
  for (const pc of installs) {
    await pc.transport.close();
    pc.ledger.close();
  }
}

Deno.test("every method: two daemons with one watch folder path and one destination folder never sweep each other's unfinished copies; their own and the earlier naming's idle ones are swept", async (t) => {
  await eachMethod(t, async ({ method, root, dst, job, open, ownerOf, plant }) => {
    const src = join(root, "src");
    const one = await open("one");
    const two = await open("two");
    try {
      const ownerOne = ownerOf(one);
      const ownerTwo = ownerOf(two);
      assert.notEqual(ownerOne, ownerTwo);
      // Over FTP a folder's listed date is taken as late as any time zone may make it (twelve
      // hours on): a day is idle for every method.
      const aDayAgo = new Date(Date.now() - 24 * 3600_000);
      // The second PC's batch under way: a copy being written now.
      const busy = await plant(ownerTwo, null);
      // The earlier naming's (by host name): one idle for a day, one written now. A local copy
      // dated a day back is still written now (its status change time): it is left too, as
      // another daemon's copy being verified is (local_resume_old_dated_test sweeps one truly
      // idle).
      const earlier = hostJobOwner(job);
      const idle = await plant(earlier, aDayAgo);
      const inUse = await plant(earlier, null);
      const earlierLeft = method === "local" ? [inUse, idle] : [inUse];
      // The first PC's own leftover from before its restart, written now.
      await closeAll(one);
      const ownLeft = await plant(ownerOne, null);
      Object.assign(one, await open("one"));
      assert.equal(ownerOf(one), ownerOne, "same owner after a restart");

      const a = await makeItem(src, `${NIGHT}/a.fits`, randomBytes(4096));
      const [sentOne] = await one.transport.send([a], never);
      assert.equal(sentOne.error, null, sentOne.error?.message);
      const left = await listing(dst);
      assert.deepEqual(
        left,
        only([a.destination], [busy, ...earlierLeft]),
        "the other PC's copy and the earlier naming's copy in use are left (whole); the rest swept",
      );
      for (const swept of method === "local" ? [ownLeft] : [idle, ownLeft]) {
        const kept = [...swept.files, ...swept.folders].filter((rel) =>
          left.files.includes(rel) || left.folders.includes(rel)
        );
        assert.deepEqual(kept, [], "the earlier naming's idle copy and its own leftover swept");
      }

      // The first PC's copy being written now: the second PC leaves it too, and sweeps `busy`,
      // the copy its own process did not hold: its leftover.
      const busyOne = await plant(ownerOne, null);
      const g = await makeItem(src, `${NIGHT}/g.fits`, randomBytes(3000));
      const [sentTwo] = await two.transport.send([g], never);
      assert.equal(sentTwo.error, null, sentTwo.error?.message);
      assert.deepEqual(
        await listing(dst),
        only([a.destination, g.destination], [busyOne, ...earlierLeft]),
      );
      for (const item of [a, g]) {
        assert.equal(
          await sha256OfFile(join(dst, item.destination)),
          await sha256OfFile(item.source),
        );
      }
    } finally {
      await closeAll(one, two);
    }
  });
});

Deno.test("every method: a copy of the earlier naming dated as an old source, in a folder written moments ago, is left whole", async (t) => {
  await eachMethod(t, async ({ method, root, dst, job, open, plant }) => {
    const one = await open("one");
    try {
      // Another daemon under this host name (an older version, a cloned PC) renaming its copy of
      // an image taken two days ago into place: the copy dated as its source already, its upload
      // folder (or, with `local`, the copy's status change time) written moments ago.
      const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
      const theirs = await plant(hostJobOwner(job), null);
      if (method === "ftp") {
        // An earlier version's, without upload folders: its copy loose in the night folder,
        // written moments ago (the folder's date says so).
        const night = join(dst, NIGHT);
        const loose = join(night, tempNameFor("b.fits", hostJobOwner(job)));
        await Deno.writeFile(loose, randomBytes(2048));
        const { uid, gid } = await Deno.stat(night);
        await Deno.chown(loose, uid, gid);
        theirs.files.push(relative(dst, loose));
      }
      for (const file of theirs.files) await Deno.utime(join(dst, file), twoDaysAgo, twoDaysAgo);
      const copy = join(dst, theirs.files[0]);
      const before = await sha256OfFile(copy);

      const a = await makeItem(join(root, "src"), `${NIGHT}/a.fits`, randomBytes(4096));
      const [sent] = await one.transport.send([a], never);
      assert.equal(sent.error, null, sent.error?.message);
      assert.deepEqual(await listing(dst), only([a.destination], [theirs]), "their copy left");
      assert.equal(await sha256OfFile(copy), before, "their copy is whole");
      assert.equal(await sha256OfFile(join(dst, a.destination)), await sha256OfFile(a.source));
    } finally {
      await closeAll(one);
    }
  });
});

Deno.test("every method: after a damaged ledger is set aside, the install still sweeps its own unfinished copies", async (t) => {
  await eachMethod(t, async ({ root, dst, open, ownerOf, plant }) => {
    const before = await open("one");
    const owner = ownerOf(before);
    await closeAll(before);
    // A copy the install left (killed while writing it), written now: only its own are swept so
    // soon; then its ledger damaged.
    await plant(owner, null);
    damageLedger(join(root, "one", "state"));
    const after = await open("one");
    try {
      assert.notEqual(after.ledger.rebuilt, null, "the damaged ledger was set aside");
      const a = await makeItem(join(root, "src"), `${NIGHT}/a.fits`, randomBytes(4096));
      const [sent] = await after.transport.send([a], never);
      assert.equal(sent.error, null, sent.error?.message);
      assert.deepEqual(await listing(dst), only([a.destination], []), "its own swept");
      assert.equal(await sha256OfFile(join(dst, a.destination)), await sha256OfFile(a.source));
    } finally {
      await closeAll(after);
    }
  });
});

Deno.test("scp and rsync, resuming as by default: dropping a kept copy at a restart sweeps the install's own old upload folders there, never another install's under way", async (t) => {
  await eachMethod(t, async ({ root, dst, job, open, ownerOf, plant }) => {
    const installs: Install[] = [];
    const start = async (pc: string) => {
      const install = await open(pc);
      installs.push(install);
      return install;
    };
    const one = await start("one");
    const two = await start("two");
    try {
      const anHourAgo = new Date(Date.now() - 3600_000);
      const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
      // The second PC's batch under way: its upload folder, made now, holds a copy that rsync
      // finished and dated as its source (taken two days ago), waiting to be renamed into place.
      const busy = await plant(ownerOf(two), null, "a.fits");
      const busyCopy = join(dst, busy.files[0]);
      await Deno.utime(busyCopy, twoDaysAgo, twoDaysAgo);
      const busyBytes = await sha256OfFile(busyCopy);
      // The first PC's, killed an hour ago while copying gone.fits (deleted since) and b.fits,
      // and one it left two days ago (expired).
      const owner = ownerOf(one);
      const gone = await plant(owner, anHourAgo, "gone.fits");
      const cut = await plant(owner, anHourAgo, "b.fits");
      const expired = await plant(owner, twoDaysAgo, "c.fits");
      const b = await makeItem(
        join(root, "src"),
        `${NIGHT}/b.fits`,
        new Uint8Array([...await Deno.readFile(join(dst, cut.files[0])), ...randomBytes(3000)]),
      );

      // Its restart finds gone.fits gone and drops its kept copy: the first call into that
      // folder since the start, which sweeps the install's leftovers there too. A stop makes it
      // at once.
      one.transport.dropKeptCopies!([`${NIGHT}/gone.fits`]);
      await closeAll(installs.shift()!);
      // rsync keeps a copy to continue for resume_partial_hours (24); scp keeps none.
      const resumes = job.transfer_method === "rsync";
      assert.deepEqual(
        await listing(dst),
        only([], resumes ? [busy, cut] : [busy]),
        `the other PC's upload folder left; its own of gone.fits (${gone.folders}) and the ` +
          `expired one (${expired.folders}) swept${resumes ? ", the recent one kept" : ""}`,
      );
      assert.equal(await sha256OfFile(busyCopy), busyBytes, "the other PC's copy is intact");

      // Started again, it sends b.fits (small: in one call, its kept copy removed as it arrives):
      // nothing of its own is left, the other PC's copy is still whole.
      const again = await start("one");
      const [sent] = await again.transport.send([b], never);
      assert.equal(sent.error, null, sent.error?.message);
      assert.deepEqual(await listing(dst), only([b.destination], [busy]));
      assert.equal(await sha256OfFile(join(dst, b.destination)), await sha256OfFile(b.source));
      assert.equal(await sha256OfFile(busyCopy), busyBytes, "the other PC's copy is intact");
    } finally {
      await closeAll(...installs);
    }
  }, { methods: ["scp", "rsync"], overrides: {} });
});
