/**
 * The daemon's runtime folder: the service manager's runtime folder when it
 * gives one, else the temp folder; always private (mode 700).
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { makeRuntimeDir } from "../../../src/config/paths.ts";

Deno.test("makeRuntimeDir uses $RUNTIME_DIRECTORY, then $XDG_RUNTIME_DIR, then the temp folder", async () => {
  const base = await Deno.makeTempDir({ prefix: "itx-runtime-base-" });
  const saved = {
    runtime: Deno.env.get("RUNTIME_DIRECTORY"),
    xdg: Deno.env.get("XDG_RUNTIME_DIR"),
  };
  const made: string[] = [];
  try {
    Deno.env.set("RUNTIME_DIRECTORY", base);
    Deno.env.set("XDG_RUNTIME_DIR", "/nonexistent/itx");
    made.push(await makeRuntimeDir());
    assert.equal(dirname(made[0]), base);
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(made[0])).mode! & 0o777, 0o700);
    }

    Deno.env.delete("RUNTIME_DIRECTORY");
    Deno.env.set("XDG_RUNTIME_DIR", base);
    made.push(await makeRuntimeDir());
    assert.equal(dirname(made[1]), base);

    // Neither usable: the system temp folder.
    Deno.env.set("XDG_RUNTIME_DIR", "/nonexistent/itx");
    made.push(await makeRuntimeDir());
    assert.notEqual(dirname(made[2]), base);
    assert.ok((await Deno.stat(made[2])).isDirectory);
  } finally {
    for (
      const [name, value] of [["RUNTIME_DIRECTORY", saved.runtime], [
        "XDG_RUNTIME_DIR",
        saved.xdg,
      ]] as const
    ) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
    for (const dir of made) await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(base, { recursive: true });
  }
});
