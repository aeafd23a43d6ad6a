/**
 * A file that must not replace what is under its final name (`TransferItem.noReplace`: another
 * sender's file) is looked at in the batch's finishing call (`check_copy`), but renamed into place
 * only after the whole batch was hashed and flushed. Another daemon sending files of the same names
 * to the same folder at the same time puts its file there in between: the rename must leave that
 * file as it is (the item fails as occupied, or counts as arrived where it holds the source's
 * bytes), never replace it. Against a real OpenSSH server, for scp and rsync, big files (sent by the
 * method, then one finishing call) and small ones (one call, `remote/receive.sh`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { listFiles, randomBytes, sha256Of, sha256OfFile } from "../../helpers/files.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { makeItem, withTransport } from "../../helpers/transports.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";

const never = new AbortController().signal;
const BIG = 9 * 1024 * 1024 + 17; // over what goes in one call: sent by scp or rsync itself
const SMALL = 100_000;

/** What the other sender writes under a `taken` name. */
const foreignBytes = (name: string) => new TextEncoder().encode(`the other sender's ${name}\n`);

Deno.test("scp/rsync: a file put under a kept final name after its check and before the rename is never replaced", async (t) => {
  // The server's `mv`, while `flag` is there, first does what the other sender does at that very
  // moment: for each copy it is to move into a folder (not into an upload folder), a file under
  // the copy's name there, unless one is there already. `taken-*` get the other sender's own
  // bytes, `same-*` those of the source (found in `flag`'s folder).
  const tools = await Deno.makeTempDir({ prefix: "itx-mv-race-" });
  await Deno.chmod(tools, 0o755);
  const flag = join(tools, "race");
  const same = join(tools, "same");
  await Deno.mkdir(same, { mode: 0o755 });
  await Deno.chmod(same, 0o755);
  await standInPrograms(tools, {
    mv: `for last do :; done\n` +
      `if [ -e '${flag}' ] && [ -d "$last" ]; then\n` +
      `  case $last in */.incoming*) ;; *)\n` +
      `    for arg do\n` +
      `      [ "$arg" = "$last" ] && break\n` +
      `      name=\${arg##*/}\n` +
      `      case $name in\n` +
      `        taken-*) (set -C; printf "the other sender's %s\\n" "$name" >"$last/$name") 2>/dev/null ;;\n` +
      `        same-*) (set -C; cat '${same}'/"$name" >"$last/$name") 2>/dev/null ;;\n` +
      `      esac\n` +
      `    done ;;\n` +
      `  esac\n` +
      `fi\n` +
      `exec /usr/bin/mv "$@"\n`,
  });
  const sshd = await startSshd({ sessionEnv: { PATH: `${tools}:/usr/bin:/bin` } });
  try {
    for (const method of ["scp", "rsync"] as const) {
      for (const size of [BIG, SMALL]) {
        const kind = size === BIG ? "big files" : "small files in one call";
        await t.step(`${method}, ${kind}`, async () => {
          await withTransport(method, sshd, {}, async ({ src, dst, transport }) => {
            const night = "20240601";
            const names = ["taken-1.fits", "free-1.fits", "taken-2.fits", "same-1.fits"];
            const items: TransferItem[] = [];
            for (const name of names) {
              const data = randomBytes(size);
              if (name.startsWith("same-")) {
                await Deno.writeFile(join(same, name), data, { mode: 0o644 });
                await Deno.chmod(join(same, name), 0o644);
              }
              const item = await makeItem(src, `${night}/${name}`, data);
              items.push({ ...item, noReplace: true });
            }
            // And a lone one, renamed without xargs.
            const lone = await makeItem(src, "20240602/taken-lone.fits", randomBytes(size));
            await Deno.writeTextFile(flag, "");
            let outcomes;
            try {
              outcomes = [
                ...await transport.send(items, never),
                ...await transport.send([{ ...lone, noReplace: true }], never),
              ];
            } finally {
              await Deno.remove(flag);
            }
            const all = [...items, lone];
            for (const [i, outcome] of outcomes.entries()) {
              const item = all[i];
              const name = item.destination.split("/").at(-1)!;
              // Compared by their SHA-256: a diff of megabytes takes longer than the test.
              const there = await sha256OfFile(join(dst, item.destination));
              if (name.startsWith("taken-")) {
                assert.equal(
                  there,
                  sha256Of(foreignBytes(name)),
                  `${name}: the other's file replaced`,
                );
                assert.equal(outcome.occupied, "other", `${name}: ${outcome.error?.message}`);
                assert.match(outcome.error?.message ?? "", /holds another file/);
              } else {
                assert.equal(outcome.error, null, `${name}: ${outcome.error?.message}`);
                assert.equal(
                  there,
                  await sha256OfFile(item.source),
                  `${name}: not the source's bytes`,
                );
                assert.equal(outcome.occupied, name.startsWith("same-") ? "same" : undefined, name);
              }
            }
            // No copy left behind in an upload folder.
            assert.deepEqual(
              await listFiles(dst),
              [...names.map((name) => `${night}/${name}`), "20240602/taken-lone.fits"].sort(),
            );
            for (const name of await Array.fromAsync(Deno.readDir(same))) {
              await Deno.remove(join(same, name.name));
            }
          });
        });
      }
    }
  } finally {
    await sshd.stop();
    await Deno.remove(tools, { recursive: true });
  }
});
