import { startSshd } from "./tests/helpers/sshd.ts";
import { createTransport } from "./src/transfer/factory.ts";
import { machineBusyMs } from "./bench/machine.ts";
const sshd = await startSshd();
const dst = await sshd.makeRemoteDir();
const rt = await Deno.makeTempDir();
for (const verify of ["size", "checksum", "size", "checksum"] as const) {
  const t = createTransport(
    sshd.job({
      transfer_method: "scp",
      remote_base_path: dst,
      verify_transfer: verify,
      ssh_options: [...sshd.job({}).ssh_options, "Ciphers=aes128-gcm@openssh.com"],
    }),
    rt,
  );
  await t.warmUp?.();
  const info = await Deno.stat("/tmp/big.bin");
  const b0 = machineBusyMs();
  const c0 = Deno.resourceUsage?.();
  const t0 = performance.now();
  const r = await t.send([{
    source: "/tmp/big.bin",
    destination: `${verify}${Math.random()}/big.bin`,
    size: info.size,
    mtimeMs: info.mtime!.getTime(),
  }], new AbortController().signal);
  const self = (() => {
    const s = Deno.readTextFileSync("/proc/self/stat");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (+f[11] + +f[12]) * 10;
  })();
  console.log(
    verify,
    ((performance.now() - t0) / 1000).toFixed(2),
    "s; machine busy",
    ((machineBusyMs() - b0) / 1000).toFixed(1),
    "s; this process total cpu so far",
    self,
    "ms",
    r[0].error?.message ?? "ok",
  );
  await t.close();
}
await sshd.stop();
