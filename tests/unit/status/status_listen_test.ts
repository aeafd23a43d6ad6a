/**
 * `status_listen` and `status_token_file`: clear messages for a wrong
 * address, a missing or short token, and a non-loopback address without one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../../../src/config/load.ts";
import { ConfigError } from "../../../src/errors.ts";
import { isLoopback, listenSettings } from "../../../src/status/listen.ts";
import { writeConfig } from "../../helpers/files.ts";

const file = "/etc/image-transfer/config.yaml";

Deno.test("status_listen: a wrong address names the key, the line and the expected form", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-listen-" });
  try {
    const config = join(root, "config.yaml");
    await writeConfig(config, {
      watch_path: root,
      remote_base_path: "/data",
      transfer_method: "local",
      status_listen: "8765",
    });
    await assert.rejects(() => loadConfig(config), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /status_listen/);
      assert.match(error.message, /config\.yaml:1: status_listen: /);
      assert.match(error.message, /"HOST:PORT", e\.g\. "127\.0\.0\.1:8765", or "" for off/);
      return true;
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("status_listen off loopback without a token: the message names the file and the key's line", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-listen-" });
  try {
    const config = join(root, "config.yaml");
    await Deno.writeTextFile(
      config,
      `watch_path: ${root}\nremote_base_path: /data\ntransfer_method: local\n\n` +
        'status_listen: "0.0.0.0:8765"\n',
    );
    const line = 5;
    const loaded = await loadConfig(config);
    await assert.rejects(() => listenSettings(loaded), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.line, line);
      assert.ok(
        error.message.startsWith(`${config}:${line}: status_listen: 0.0.0.0:8765 can be reached`),
        error.message,
      );
      return true;
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("status_listen: default, off, loopback names and IPv6", async () => {
  assert.equal(await listenSettings({ file, status_listen: "", status_token_file: null }), null);
  assert.deepEqual(
    await listenSettings({ file, status_listen: "127.0.0.1:8765", status_token_file: null }),
    { hostname: "127.0.0.1", port: 8765, loopback: true, token: null, tls: null },
  );
  const v6 = await listenSettings({ file, status_listen: "[::1]:9000", status_token_file: null });
  assert.deepEqual(v6, { hostname: "::1", port: 9000, loopback: true, token: null, tls: null });
  assert.ok(isLoopback("localhost") && isLoopback("127.1.2.3"));
  assert.ok(!isLoopback("0.0.0.0") && !isLoopback("192.168.1.5") && !isLoopback("::"));
  await assert.rejects(
    () => listenSettings({ file, status_listen: "127.0.0.1:70000", status_token_file: null }),
    /status_listen: port 70000 is out of range/,
  );
});

Deno.test("status_token_file: required off loopback; a missing, empty, short or readable-by-others token is refused", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-token-" });
  try {
    const open = { file, status_listen: "0.0.0.0:8765" };
    await assert.rejects(
      () => listenSettings({ ...open, status_token_file: null }),
      (error: Error) =>
        error instanceof ConfigError && /needs a token: set status_token_file/.test(error.message),
    );
    await assert.rejects(
      () => listenSettings({ ...open, status_token_file: join(root, "missing") }),
      // Not its name: it may be the token itself typed where the path belongs.
      /status_token_file: the file it names does not exist \(its name is not shown: it may be the token itself\); give the path of a file that holds the token$/,
    );
    // A file where a folder of its path should be: said so, not the system's "Not a directory".
    await Deno.writeTextFile(join(root, "plain"), "x", { mode: 0o600 });
    await assert.rejects(
      () => listenSettings({ ...open, status_token_file: join(root, "plain", "token") }),
      /status_token_file: \S+\/plain on the path of \S+plain\/token is a file, not a folder; fix the path$/,
    );
    await Deno.writeTextFile(join(root, "empty"), "\n", { mode: 0o600 });
    await assert.rejects(
      () => listenSettings({ ...open, status_token_file: join(root, "empty") }),
      /holds no token/,
    );
    await Deno.writeTextFile(join(root, "short"), "abc\n", { mode: 0o600 });
    await assert.rejects(
      () => listenSettings({ ...open, status_token_file: join(root, "short") }),
      /shorter than 16 characters/,
    );
    await Deno.writeTextFile(join(root, "good"), "  0123456789abcdef0123  \n", { mode: 0o600 });
    const settings = await listenSettings({ ...open, status_token_file: join(root, "good") });
    // A token others can read is refused, naming the chmod that fixes it.
    await Deno.chmod(join(root, "good"), 0o640);
    await assert.rejects(
      () => listenSettings({ ...open, status_token_file: join(root, "good") }),
      /good can be read or written by others \(mode 0640\).*chmod 600/,
    );
    assert.equal(settings?.token, "0123456789abcdef0123");
    assert.equal(settings?.loopback, false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
