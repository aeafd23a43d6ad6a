/**
 * The `ftp_*` keys: defaults, and the problems the schema names.
 */
import assert from "node:assert/strict";
import { jobSchema } from "../../../src/config/schema.ts";
import { type FtpJob, ftpPassword } from "../../../src/transfer/ftp/connect.ts";
import { TransferError } from "../../../src/errors.ts";

const BASE = {
  watch_path: "/data/in",
  remote_base_path: "/upload",
  transfer_method: "ftp",
  remote_host: "archive.example.org",
};

function problems(fields: Record<string, unknown>): string[] {
  const result = jobSchema.safeParse({ ...BASE, ...fields });
  return result.success
    ? []
    : result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
}

Deno.test("ftp keys default to explicit TLS on port 21 with the system's authorities", () => {
  const job = jobSchema.parse({ ...BASE, remote_user: "obs", ftp_password_env: "OBS_FTP" });
  assert.equal(job.ftp_tls, "required");
  assert.equal(job.ftp_port, null);
  assert.equal(job.ftp_ca_file, null);
  assert.equal(job.ftp_password_file, null);
});

Deno.test("ftp with a login name but no password source is refused with what to do", () => {
  const found = problems({ remote_user: "obs" });
  assert.equal(found.length, 1);
  // Said at the login name, the key the user wrote (a missing password has no line).
  assert.match(found[0], /^remote_user: .*give ftp_password_file .* or ftp_password_env/);
  assert.deepEqual(problems({}), [], "anonymous needs no password");
});

Deno.test("ftp password file and variable together and bad values are refused; a relative file is not", () => {
  assert.match(
    problems({ ftp_password_file: "/etc/pw", ftp_password_env: "PW" }).join("\n"),
    /ftp_password_env: give either ftp_password_file or ftp_password_env, not both/,
  );
  // Relative to the config file's folder, like every local path.
  assert.deepEqual(problems({ ftp_password_file: "pw.txt", ftp_ca_file: "ca.pem" }), []);
  assert.match(
    problems({ ftp_password_env: "1-bad" }).join("\n"),
    /ftp_password_env: expected an environment variable name/,
  );
  assert.match(problems({ ftp_tls: "implicit" }).join("\n"), /ftp_tls/);
  assert.match(problems({ ftp_port: 70000 }).join("\n"), /ftp_port/);
});

Deno.test("a login whose ftp_password_file is gone says so without its name (it may be the password itself)", () => {
  const job = {
    ...jobSchema.parse({
      ...BASE,
      remote_user: "obs",
      ftp_password_file: "/nowhere/Hunter2-S3cret",
    }),
    name: "default",
  } as unknown as FtpJob;
  // Before: "FTP password: cannot read ftp_password_file /nowhere/Hunter2-S3cret: No such file…".
  assert.throws(
    () => ftpPassword(job),
    (error: Error) =>
      error instanceof TransferError && !error.message.includes("Hunter2") &&
      error.message ===
        "FTP password: ftp_password_file: the file it names does not exist (its name is not " +
          "shown: it may be the password itself); give the path of a file that holds the password",
  );
});
