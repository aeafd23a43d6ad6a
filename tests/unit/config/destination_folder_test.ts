/**
 * One folder, one spelling: the destination identity of every way of writing one
 * `remote_base_path` (trailing and repeated slashes, `.` segments) is the same for each method,
 * `..` is kept where the folder's system resolves it (local, FTP) and taken out where scp and rsync
 * send to the path without it, a relative remote base stays relative, and the host, user, port and
 * method are as they were. The check that two jobs do not share a folder reads the same rule.
 */
import assert from "node:assert/strict";
import {
  destinationFolder,
  folderSpelling,
  mayBeOneFolder,
  remoteBasePath,
} from "../../../src/config/destination_folder.ts";
import { parseConfig } from "../../../src/config/load.ts";
import { destinationIdentity } from "../../../src/ledger/destination_identity.ts";
import { respelled } from "../../../src/ledger/destination_spellings.ts";
import { assertDestinationsApart } from "../../../src/pipeline/destinations_apart.ts";
import { testJob } from "../../helpers/jobs.ts";

/** A job of `method` to obs@freya, base path `base`, with `keys` added. */
function job(method: string, base: string, keys: Record<string, unknown> = {}) {
  return testJob("default", {
    watch_path: "/watch",
    transfer_method: method,
    remote_host: "freya",
    remote_user: "obs",
    remote_base_path: base,
    ...(method === "ftp" ? { ftp_password_env: "FTP_PASSWORD" } : {}),
    ...keys,
  });
}

Deno.test("destination identity: trailing, repeated slashes and . segments are one folder for every method", () => {
  const expected: Record<string, string> = {
    scp: "ssh://obs@freya/data/images",
    rsync: "ssh://obs@freya/data/images",
    ftp: "ftp://obs@freya/data/images",
    local: "local:/data/images",
  };
  for (const [method, identity] of Object.entries(expected)) {
    for (
      const base of [
        "/data/images",
        "/data/images/",
        "/data/images//",
        "/data//images",
        "//data/images",
        "/data/./images/.",
        "/./data/images/./",
      ]
    ) {
      assert.equal(destinationIdentity(job(method, base)), identity, `${method} ${base}`);
    }
  }
  // The root is the root.
  assert.equal(destinationIdentity(job("ftp", "//")), "ftp://obs@freya/");
  assert.equal(destinationIdentity(job("scp", "/")), "ssh://obs@freya/");
  assert.equal(destinationIdentity(job("local", "/./")), "local:/");
});

Deno.test("destination identity: host, user, port and method stay as they were", () => {
  assert.equal(
    // Spaces around the host are refused by the config now; the identity still takes them off.
    destinationIdentity({ ...job("scp", "/data/", { ssh_port: 2222 }), remote_host: " Freya " }),
    "ssh://obs@Freya:2222/data",
  );
  assert.equal(
    destinationIdentity(job("ftp", "/data//", { ftp_port: 2121, remote_user: "" })),
    "ftp://freya:2121/data",
  );
  assert.notEqual(
    destinationIdentity(job("ftp", "/data/")),
    destinationIdentity(job("scp", "/data")),
  );
});

Deno.test("destination identity: a relative remote base stays relative, in the login's home", () => {
  for (const base of ["images", "images/", "./images", "images//", "./images/."]) {
    assert.equal(destinationIdentity(job("ftp", base)), "ftp://obs@freyaimages", base);
    assert.equal(destinationIdentity(job("rsync", base)), "ssh://obs@freyaimages", base);
  }
  // scp and rsync read ~/ as the login's home: the same folder as the relative path.
  assert.equal(destinationIdentity(job("scp", "~/images/")), "ssh://obs@freyaimages");
  assert.equal(destinationFolder(job("scp", "~")), ".");
  assert.equal(destinationFolder(job("scp", "./")), ".");
  assert.equal(destinationFolder(job("ftp", ".")), ".");
  // Over FTP, ~ is a name like another.
  assert.equal(destinationFolder(job("ftp", "~/images/")), "~/images");
});

Deno.test("destination identity: .. is kept where links decide (local, FTP), taken out where scp and rsync send without it", () => {
  // Through a link, /data/link/.. is not /data: the identity never takes two folders for one.
  assert.equal(
    destinationIdentity(job("local", "/data/link/../images/")),
    "local:/data/link/../images",
  );
  assert.equal(
    destinationIdentity(job("ftp", "/data/link/..//images")),
    "ftp://obs@freya/data/link/../images",
  );
  assert.equal(folderSpelling("../up/"), "../up");
  // scp and rsync are given the path with .. taken out (remoteBasePath): that is their folder.
  assert.equal(
    destinationIdentity(job("scp", "/data/x/../images/")),
    "ssh://obs@freya/data/images",
  );
  assert.equal(remoteBasePath("/data/x/../images//"), "/data/images");
  assert.equal(remoteBasePath("//"), "/");
  // Where two jobs might meet, .. is taken out too: refusing is the safe side.
  assert.equal(mayBeOneFolder(job("ftp", " /data/link/../images/ ")), "/data/images");
});

Deno.test("folder spelling: Windows paths, drive and network, either separator", () => {
  assert.equal(folderSpelling("D:/archive//images/", true), "D:\\archive\\images");
  assert.equal(folderSpelling("D:\\archive\\.\\images\\", true), "D:\\archive\\images");
  assert.equal(folderSpelling("\\\\nas\\share\\images\\", true), "\\\\nas\\share\\images");
  assert.equal(folderSpelling("//nas/share/images/", true), "\\\\nas\\share\\images");
  assert.equal(folderSpelling("D:\\", true), "D:\\");
  assert.equal(folderSpelling("D:", true), "D:");
});

Deno.test("respelled: a recorded identity of another spelling of the job's folder, on its server only", () => {
  const now = job("ftp", "/data/images");
  assert.equal(respelled(now, "ftp://obs@freya/data/images/"), "ftp://obs@freya/data/images");
  assert.equal(respelled(now, "ftp://obs@freya//data//images"), "ftp://obs@freya/data/images");
  assert.equal(respelled(now, "ftp://obs@freya/data/other/"), "ftp://obs@freya/data/other");
  assert.equal(
    respelled(now, "ftp://obs@freya:2121/data/images/"),
    "ftp://obs@freya:2121/data/images",
  );
  assert.equal(respelled(now, "ssh://obs@freya/data/images/"), null);
  assert.equal(respelled(now, "ftp://obs@freya"), null);
  assert.equal(respelled(job("local", "/x"), "local:/x//"), "local:/x");
});

Deno.test("destinations apart: two jobs whose base paths are spellings of one folder are refused, as the identity counts them one", () => {
  for (
    const [method, a, b] of [
      ["ftp", "/data", "/data/./"],
      ["scp", "~/images", "images/"],
      ["rsync", "/data//x", "/data/x/"],
    ]
  ) {
    const config = parseConfig(
      [
        "jobs:",
        ...[a, b].map((base, i) =>
          [
            `  - name: cam${i}`,
            `    watch_path: /watch${i}`,
            `    remote_base_path: "${base}"`,
            `    transfer_method: ${method}`,
            "    remote_host: freya",
            "    remote_user: obs",
            ...(method === "ftp" ? ["    ftp_password_env: FTP_PASSWORD"] : []),
          ].join("\n")
        ),
      ].join("\n"),
      "/etc/image-transfer/config.yaml",
    );
    assert.equal(destinationIdentity(config.jobs[0]), destinationIdentity(config.jobs[1]));
    assert.throws(
      () => assertDestinationsApart(config, (path) => path),
      /job cam0 sends into .* too/,
      `${method} ${a} ${b}`,
    );
  }
});
