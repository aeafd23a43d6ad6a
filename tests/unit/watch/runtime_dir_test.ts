/**
 * The daemon's runtime folder: the service manager's runtime folder when it
 * gives one, else the temp folder; always private (mode 700).
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { makeRuntimeDir } from "../../../src/config/paths.ts";

Deno.test("makeRuntimeDir uses $RUNTIME_DIRECTORY, then $XDG_RUNTIME_DIR, then the temp folder", async () => {
  const base = await Deno.makeTempDir({ prefix: "itx-runtime-base-" });
  // Not by setting the variables: the environment is the whole test process's.
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const made: string[] = [];
  try {
    made.push(
      await makeRuntimeDir(env({ RUNTIME_DIRECTORY: base, XDG_RUNTIME_DIR: "/nonexistent/itx" })),
    );
    assert.equal(dirname(made[0]), base);
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(made[0])).mode! & 0o777, 0o700);
    }

    made.push(await makeRuntimeDir(env({ XDG_RUNTIME_DIR: base })));
    assert.equal(dirname(made[1]), base);

    // Neither usable: the system temp folder.
    made.push(await makeRuntimeDir(env({ XDG_RUNTIME_DIR: "/nonexistent/itx" })));
    assert.notEqual(dirname(made[2]), base);
    assert.ok((await Deno.stat(made[2])).isDirectory);
  } finally {
    for (const dir of made) await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(base, { recursive: true });
  }
});
