/**
 * `status` asks the running daemon's page with the token only where the config's `status_listen`
 * says too: an address in the state folder's daemon.json that is another (a file whoever can edit
 * would point at a listener of their own) gets no token.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { askDaemon } from "../../../src/cli/live_status.ts";
import type { Config } from "../../../src/config/types.ts";

/** A port of this test's range (`ITX_TEST_PORTS`), where nothing listens. */
function quietPort(): number {
  const from = Number((Deno.env.get("ITX_TEST_PORTS") ?? "19300-19399").split("-")[0]);
  return from + 2;
}

Deno.test("status: the token is not sent to an address daemon.json gives that is not the config's status_listen", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-live-" });
  const heard: Array<string | null> = [];
  const listener = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      heard.push(request.headers.get("authorization"));
      return Response.json({ jobs: [], uptimeSeconds: 1, lastSuccessAt: null });
    },
  );
  try {
    const token = join(root, "token");
    await Deno.writeTextFile(token, "0123456789abcdef0123456789abcdef\n", { mode: 0o600 });
    const config = {
      file: join(root, "config.yaml"),
      status_listen: `127.0.0.1:${quietPort()}`,
      status_token_file: token,
      status_tls_cert: null,
      status_tls_key: null,
    } as unknown as Config;
    const elsewhere = `127.0.0.1:${listener.addr.port}`;
    const live = await askDaemon(config, undefined, elsewhere);
    assert.deepEqual(heard, [], "nothing asked there, the token least of all");
    assert.ok("unavailable" in live);
    assert.ok(
      live.unavailable.includes(
        `the daemon says its status page listens at ${elsewhere}, not at status_listen ` +
          `${config.status_listen} of the config`,
      ),
      live.unavailable,
    );
    // Where the config says it too, the token goes.
    const there = await askDaemon({ ...config, status_listen: elsewhere }, undefined, elsewhere);
    assert.ok("jobs" in there, JSON.stringify(there));
    assert.deepEqual(heard, ["Bearer 0123456789abcdef0123456789abcdef"]);
  } finally {
    await listener.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});
