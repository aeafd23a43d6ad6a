/**
 * Which files of a watch folder a job sends: `file_patterns`, `exclude_patterns`,
 * hidden names, our own temporary names, and hostile names as plain data.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_FILE_PATTERNS } from "../../../src/config/schema.ts";
import { tempNameFor } from "../../../src/transfer/temp_name.ts";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
// @ts-types="@types/picomatch"
import picomatch from "picomatch";

function filter(file_patterns: string[], exclude_patterns: string[] = []) {
  return createFileFilter({ file_patterns, exclude_patterns });
}

function assertIncluded(f: ReturnType<typeof filter>, paths: string[], expected: boolean) {
  for (const p of paths) {
    assert.equal(f.includesFile(p), expected, `includesFile(${JSON.stringify(p)})`);
  }
}

Deno.test("file_filter: a pattern without / matches the base name at any depth", () => {
  const f = filter(["*.fits"]);
  assertIncluded(f, ["a.fits", "night/a.fits", "a/b/c/d/e/f.fits", "x.fits/y.fits"], true);
  assertIncluded(f, ["a.fit", "a.fits.bak", "fits", "night/a.fitsx", "a.fits/readme.txt"], false);
});

Deno.test("file_filter: a pattern with / matches the whole relative path", () => {
  const f = filter(["raw/**/*.fit", "science/*.fits"]);
  assertIncluded(f, ["raw/a.fit", "raw/x/a.fit", "raw/x/y/z/a.fit", "science/m42.fits"], true);
  assertIncluded(f, ["a.fit", "x/raw/a.fit", "science/deep/m42.fits", "m42.fits"], false);
  // Both kinds together.
  const both = filter(["*.fts", "raw/*.fit"]);
  assertIncluded(both, ["a.fts", "deep/down/a.fts", "raw/a.fit"], true);
  assertIncluded(both, ["a.fit", "deep/raw/a.fit"], false);
});

Deno.test("file_filter: patterns match upper and lower case alike by default", () => {
  const lower = filter(["*.fits"]);
  assertIncluded(lower, ["a.fits", "a.FITS", "c.Fits", "night/B.FITS", "NIGHT/b.fits"], true);
  assertIncluded(lower, ["b.fit", "B.FIT", "a.FITS.bak", "a.fitsx"], false);
  const upper = filter(["*.FIT"]);
  assertIncluded(upper, ["b.fit", "B.FIT", "deep/x.Fit"], true);
  assertIncluded(upper, ["a.fits", "a.FITS"], false);
  const path = filter(["Raw/**/*.fits"], ["CALIB"]);
  assertIncluded(path, ["raw/a.FITS", "RAW/x/a.fits"], true);
  assertIncluded(path, ["raw/calib/a.fits", "raw/Calib/a.fits", "cooked/a.fits"], false);
  assert.equal(path.includesDir("raw/Calib"), false, "excludes ignore case too");
  const defaults = filter(DEFAULT_FILE_PATTERNS);
  assertIncluded(
    defaults,
    [
      "a.fits",
      "A.FITS",
      "a.Fits",
      "a.fit",
      "A.FIT",
      "a.fts",
      "c.fits.fz",
      "c.FITS.FZ",
      "c.fits.GZ",
    ],
    true,
  );
  assertIncluded(defaults, ["a.fits.bz2", "a.txt", "a.fitz"], false);
});

Deno.test("file_filter: case_sensitive_patterns: true matches case exactly", () => {
  const strict = (file_patterns: string[], exclude_patterns: string[] = []) =>
    createFileFilter({ file_patterns, exclude_patterns, case_sensitive_patterns: true });
  const lower = strict(["*.fits"]);
  assertIncluded(lower, ["a.fits", "night/a.fits"], true);
  assertIncluded(lower, ["A.FITS", "a.Fits", "night/B.FITS", "b.fit"], false);
  const excluded = strict(["*.fits"], ["calib"]);
  assertIncluded(excluded, ["Calib/a.fits"], true);
  assertIncluded(excluded, ["calib/a.fits"], false);
  const defaults = strict(DEFAULT_FILE_PATTERNS);
  assertIncluded(defaults, ["a.fits", "A.FITS", "a.fit", "A.FIT", "c.fits.fz"], true);
  assertIncluded(defaults, ["a.Fits", "a.FITS.FZ"], false);
});

Deno.test("file_filter: a name written with a combining accent (as macOS writes names) matches a pattern typed with the accented letter, and the other way round", () => {
  const composed = "caf\u00e9"; // \u00e9: one character, as typed on most keyboards
  const decomposed = "cafe\u0301"; // e + combining acute accent (macOS, files copied from a Mac)
  for (const sensitive of [false, true]) {
    for (const [typed, written] of [[composed, decomposed], [decomposed, composed]]) {
      const f = createFileFilter({
        file_patterns: ["*.fits"],
        exclude_patterns: [`${typed}*`, `calibraci${typed.slice(3)}n/`],
        case_sensitive_patterns: sensitive,
      });
      assertIncluded(f, [`${written}_1.fits`, `calibraci${written.slice(3)}n/flat.fits`], false);
      assertIncluded(f, ["cafe_1.fits", "calibracion/flat.fits"], true);
      const g = createFileFilter({
        file_patterns: [`${typed}*.fits`],
        exclude_patterns: [],
        case_sensitive_patterns: sensitive,
      });
      assertIncluded(g, [`night/${written}_1.fits`], true);
    }
  }
});

Deno.test("file_filter: explain says why a name is skipped", () => {
  const f = filter(["*.fits", "raw/*.fit"], ["calib", "*_test.fits"]);
  assert.equal(f.explain("a.fits"), null);
  assert.equal(f.explain("raw/a.fit"), null);
  assert.equal(f.explain("a.txt"), "matches none of file_patterns");
  // A blank after the extension, which no listing shows, is named.
  assert.equal(
    f.explain("sub dir/m42 001.fits "),
    'matches none of file_patterns: its name ends in " " after the extension; rename it ' +
      "without that to send it",
  );
  assert.equal(f.explain("a.txt "), "matches none of file_patterns");
  assert.equal(f.explain("x_test.fits"), "matches exclude pattern *_test.fits");
  assert.equal(
    f.explain("calib/a.fits"),
    "in folder calib: folder matches exclude pattern calib",
  );
  assert.equal(f.explain(".a.fits"), "hidden (its name starts with a dot)");
  assert.equal(
    f.explain(".git/a.fits"),
    "in folder .git: hidden folder (its name starts with a dot)",
  );
  assert.equal(f.explain(tempNameFor("a.fits")), "an image-transfer temporary file");
  assert.equal(f.explain("night/calib/deep/a.fits")?.startsWith("in folder night/calib:"), true);
  assert.equal(f.dirSkip("calib")?.reason, "folder matches exclude pattern calib");
  assert.equal(f.dirSkip("night"), null);
  // Each reason agrees with includesFile.
  for (const rel of ["a.fits", "a.txt", "x_test.fits", "calib/a.fits", ".a.fits", "raw/b.fit"]) {
    assert.equal(f.includesFile(rel), f.explain(rel) === null, rel);
  }
});

Deno.test("file_filter: exclude patterns skip files and whole folders", () => {
  const f = filter(["*.fits"], ["calib", "junk/**", "**/tmp/*", "*_test.fits", "dark/*.fits"]);
  // Files that are not excluded.
  assertIncluded(f, ["a.fits", "night/a.fits", "calib.fits", "junkyard/a.fits"], true);
  assertIncluded(f, ["x/dark/a.fits", "dark/sub/a.fits", "tmpx/a.fits"], true);
  // A folder name excludes its subtree at any depth.
  assertIncluded(f, ["calib/a.fits", "calib/deep/a.fits", "night/calib/a.fits"], false);
  // folder/** excludes everything under that top-level folder.
  assertIncluded(f, ["junk/a.fits", "junk/x/y/a.fits"], false);
  // **/tmp/* excludes files in any tmp folder, and (as a folder) everything below.
  assertIncluded(f, ["tmp/a.fits", "a/tmp/b.fits", "a/b/tmp/c.fits", "a/tmp/c/b.fits"], false);
  // Base-name and path excludes for files.
  assertIncluded(f, ["x_test.fits", "night/x_test.fits", "dark/a.fits"], false);

  assert.equal(f.includesDir(""), true);
  assert.equal(f.includesDir("."), true);
  assert.equal(f.includesDir("night"), true);
  assert.equal(f.includesDir("tmp"), true, "tmp itself is not excluded, only what is in it");
  for (const dir of ["calib", "night/calib", "calib/deep", "junk", "junk/x", "a/tmp/c"]) {
    assert.equal(f.includesDir(dir), false, `includesDir(${JSON.stringify(dir)})`);
  }
});

Deno.test("file_filter: an exclude pattern ending in / names folders only, as in .gitignore", () => {
  const f = filter(["*.fits", "flats"], ["calib/", "raw/bias/"]);
  // Every folder of that name and all below it, at any depth; one with a / from the top.
  assertIncluded(f, ["calib/a.fits", "calib/deep/a.fits", "night/calib/a.fits"], false);
  assertIncluded(f, ["raw/bias/a.fits", "raw/bias/x/a.fits"], false);
  assert.equal(
    f.explain("night/calib/a.fits"),
    "in folder night/calib: folder matches exclude pattern calib/",
  );
  assert.equal(f.includesDir("calib"), false);
  // Not a file of that name, nor a folder of another name or place.
  assertIncluded(f, ["calib.fits", "calibs/a.fits", "x/raw/bias/a.fits", "bias/a.fits"], true);
  assert.equal(filter(["*"], ["flats/"]).explain("flats"), null, "a file named flats is sent");
});

Deno.test("file_filter: hidden files and folders are never included", () => {
  const f = filter(["*.fits", "*", ".*"]);
  assertIncluded(
    f,
    [".a.fits", ".fits", "night/.a.fits", ".git/a.fits", "x/.cache/y/a.fits"],
    false,
  );
  assertIncluded(f, ["a.fits", "a", "x.y/a.fits"], true);
  assert.equal(f.includesDir(".git"), false);
  assert.equal(f.includesDir("night/.snapshots"), false);
  assert.equal(f.includesDir("night.d"), true);
});

Deno.test("file_filter: our temporary names are never included", () => {
  const f = filter(["*", "*.fits", "*.image-transfer-partial"]);
  for (const name of ["a.fits", "flat 001.fits", "x".repeat(250) + ".fits"]) {
    const temp = tempNameFor(name);
    assertIncluded(f, [temp, `night/${temp}`], false);
    assertIncluded(f, [name, `night/${name}`], true);
  }
});

Deno.test("file_filter: empty names and trailing slashes are not files", () => {
  const f = filter(["*"]);
  assertIncluded(f, ["", "night/", "a//"], false);
});

Deno.test("file_filter: hostile names are data", () => {
  const f = filter(["*.fits"], ["*keep-out*"]);
  const hostile = [
    "with space.fits",
    "$(rm -rf ~).fits",
    "`id`.fits",
    "a;b.fits",
    "-rf.fits",
    "--help.fits",
    "a\nb.fits",
    "\nstarts with newline.fits",
    "quote'\"s.fits",
    "star*.fits",
    "question?.fits",
    "[brackets].fits",
    "{a,b}.fits",
    "back\\slash.fits",
    "caf\u00e9 NFC.fits",
    "cafe\u0301 NFD.fits",
    "日本語.fits",
    "night dir/$(x)/a b.fits",
  ];
  assertIncluded(f, hostile, true);
  assertIncluded(f, ["$(rm -rf ~).fit", "a\nb.fits\n", "-rf.fits.txt"], false);
  // A pattern character in a file name does not act as a pattern.
  const literal = filter(["a*.fits"]);
  assertIncluded(literal, ["a*.fits", "abc.fits"], true);
  assertIncluded(literal, ["b*.fits"], false);
  // An exclude still applies to a hostile name.
  assertIncluded(f, ["$(keep-out).fits", "dir/-keep-out-.fits"], false);
});

Deno.test("file_filter: with FTP, a name holding a line break (file or folder) is skipped at ERROR, with why; other methods send it", () => {
  const job = { file_patterns: ["*.fits"], exclude_patterns: ["skip"] };
  const names = ["a\nb.fits", "cr\r.fits", "night\nfolder/c.fits"];
  for (const transfer_method of ["local", "scp", "rsync"]) {
    assertIncluded(createFileFilter({ ...job, transfer_method }, { skipLog: null }), names, true);
  }
  const ftp = createFileFilter({ ...job, transfer_method: "ftp" }, { skipLog: null });
  assertIncluded(ftp, names, false);
  assertIncluded(ftp, ["plain.fits", "with space.fits", "night/c.fits"], true);
  assert.equal(ftp.includesDir("night\nfolder"), false);
  const file = ftp.nameSkip("a\nb.fits");
  assert.equal(file?.level, "error");
  assert.match(file!.reason, /^its name holds a line break, which FTP cannot carry .*; rename it/);
  assert.equal(ftp.dirSkip("night\nfolder")?.level, "error");
  assert.match(ftp.explain("night\nfolder/c.fits")!, /^in folder night\nfolder: its name holds/);
  // What no rule would send anyway is said as before.
  assert.equal(ftp.nameSkip("a\nb.txt")?.code, "unmatched");
  assert.equal(ftp.nameSkip("skip/a\nb.fits")?.code, "excluded");
});

Deno.test("file_filter: a file whose name is sent and that cannot be examined now (its lstat fails otherwise than 'not found') is included, for the stability checker to look at; one that is gone is not", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-filter-" });
  try {
    // A link to itself on the way: lstat fails with ELOOP, as an I/O error or a stale handle on a
    // share, or a folder's permissions, fail it.
    Deno.symlinkSync("cam", join(root, "cam"));
    Deno.writeFileSync(join(root, "plain"), new Uint8Array(1));
    const f = createFileFilter(
      { watch_path: root, file_patterns: ["*.fits"], exclude_patterns: [] },
      { skipLog: null },
    );
    assert.equal(f.includesFile("cam/a.fits"), true);
    assert.equal(f.includesFile("cam/a.txt"), false, "the name rules still apply");
    assert.equal(f.includesFile("gone/a.fits"), false, "not found");
    assert.equal(f.includesFile("plain/a.fits"), false, "not a directory on the way");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("file_filter: patterns decide exactly as picomatch itself, for names at any depth, both cases, and odd names", () => {
  const sets = [
    DEFAULT_FILE_PATTERNS,
    ["*.fits"],
    ["raw/**/*.fit", "science/*.fits", "*.fz"],
    ["a?b", "[!x]*.fit", "{light,dark}_*.fits", "**/calib/*", "light_*", "*"],
    ["*.{fits,fit}", "*[0-9].fts", "**", "night*/**"],
  ];
  const paths = [
    ...[
      "a.fits",
      "night/a.fits",
      "night/a.FITS",
      "A.Fit",
      "x.fits/y.txt",
      "a.fits.fz",
      "a.fits.gz",
    ],
    ...["raw/a.fit", "raw/x/y/a.FIT", "x/raw/a.fit", "science/m42.fits", "science/deep/m.fits"],
    ...["acb", "x/acb", "aXb/c", "light_1.fits", "night/dark_2.fits", "calib/flat.fits"],
    ...["x/calib/flat.fits", "x/calib", "b.fit", "x.fit", "frame9.fts", "frame.fts", "night1/a"],
    ...["back\\slash.fits", "new\nline.fits", "e\u0301.fits", "\u00e9/\u00e9.fits", "[x].fits"],
    ...["a.fits/", "night/", "a..fits", "-dash.fits", "sp ace.fits", "x/y/z"],
  ];
  for (const patterns of sets) {
    for (const caseSensitive of [false, true]) {
      // What the filter matched through picomatch's own matchers before.
      const options = { dot: true, flags: caseSensitive ? "s" : "si", nocase: !caseSensitive };
      const base = patterns.filter((p) => !p.includes("/"));
      const full = patterns.filter((p) => p.includes("/"));
      const byBase = base.length > 0 ? picomatch(base, { ...options, basename: true }) : null;
      const byPath = full.length > 0 ? picomatch(full, options) : null;
      const nfc = (text: string) => text.normalize("NFC");
      const job = { file_patterns: patterns, exclude_patterns: patterns };
      const f = createFileFilter({ ...job, case_sensitive_patterns: caseSensitive }, {
        skipLog: null,
      });
      for (const path of paths) {
        const matched = (byBase?.(nfc(path)) ?? false) || (byPath?.(nfc(path)) ?? false);
        const why = `${JSON.stringify(patterns)} ${caseSensitive} ${JSON.stringify(path)}`;
        const code = f.nameSkip(path, true)?.code;
        if (code === "empty" || code === "hidden" || code === "temp") continue;
        // Included by file_patterns, then excluded by the same patterns: "excluded" iff matched.
        assert.equal(code, matched ? "excluded" : "unmatched", why);
      }
    }
  }
});
