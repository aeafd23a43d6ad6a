/**
 * A network link a test can cut: a new network namespace joined to this one by
 * a veth pair, with addresses in a private /30 (10.231.x.y) that exists only
 * between the two ends. A server started inside the namespace (see
 * `startSshd`'s `commandPrefix`) is reachable from here only over that link.
 *
 * Linux only, needs root and `ip` (Debian package iproute2).
 *
 * @module
 */

/** A namespace and the veth pair that joins it to this one. */
export interface TestLink {
  /** Name of the network namespace (`ip netns`). */
  namespace: string;
  /** Address of this side's end of the link. */
  hostAddress: string;
  /** Address of the namespace's end: where a server in the namespace listens. */
  peerAddress: string;
  /** argv prefix that runs a program inside the namespace. */
  commandPrefix: string[];
  /**
   * Cut the link. `"down"`: the namespace's end goes down (`ip link set …
   * down`); packets either way are lost and new connections soon fail with
   * "No route to host" (address resolution fails). `"silent"`: the link stays
   * up but each end sends to a hardware address nobody has, so packets vanish
   * without any error, as behind a failed router. Either way this side's
   * route stays: nothing leaves by another way.
   */
  cut(how?: "down" | "silent"): Promise<void>;
  /** Bring the link back after {@linkcode TestLink.cut}. */
  restore(): Promise<void>;
  /** Remove the veth pair and the namespace (safe to call twice). */
  remove(): Promise<void>;
}

/** A fixed neighbour entry pointing at a locally administered address no interface has. */
const NOWHERE = ["lladdr", "02:00:5e:00:53:01", "nud", "permanent"];

/** Run `ip` with `args`; throws with its stderr when it fails. */
async function ip(args: string[]): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error("Cannot run link tests: ip is missing; apt-get install iproute2");
    }
    throw error;
  }
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Limit what leaves through `device` to `mbit` megabits per second (token bucket). */
async function limitRate(device: string, mbit: number): Promise<void> {
  const args = ["qdisc", "add", "dev", device, "root", "tbf", "rate", `${mbit}mbit`];
  args.push("burst", "256kb", "latency", "100ms");
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("tc", { args, stdout: "null", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error("Cannot run link tests: tc is missing; apt-get install iproute2");
    }
    throw error;
  }
  if (!out.success) {
    throw new Error(`tc ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** A random /30 in 10.231.0.0/16 that no interface here uses yet: [host, peer]. */
async function freeSubnet(): Promise<[string, string]> {
  const used = await ip(["-o", "-4", "addr", "show"]);
  for (let tries = 0; tries < 100; tries++) {
    const third = Math.floor(Math.random() * 256);
    const fourth = Math.floor(Math.random() * 64) * 4;
    const prefix = `10.231.${third}.`;
    const taken = [0, 1, 2, 3].some((i) => used.includes(` ${prefix}${fourth + i}/`));
    if (!taken) return [`${prefix}${fourth + 1}`, `${prefix}${fourth + 2}`];
  }
  throw new Error("Cannot find a free /30 in 10.231.0.0/16");
}

/** Options of {@linkcode createTestLink}. */
export interface TestLinkOptions {
  /**
   * Limit what this side sends over the link to this many megabits per second
   * (`tc … tbf`), so that a transfer lasts long enough to be cut. @default no limit
   */
  rateMbit?: number;
}

/**
 * Create a namespace `itx-…` and a veth pair into it, both ends up, with a
 * private /30 between them. Fails (never skips) when this is not possible,
 * saying why. Call `remove()` in a `finally`.
 */
export async function createTestLink(options: TestLinkOptions = {}): Promise<TestLink> {
  if (Deno.build.os !== "linux") throw new Error("Cannot run link tests: Linux only");
  if (Deno.uid() !== 0) throw new Error("Cannot run link tests: they need root (ip netns)");
  const id = `${Deno.pid.toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  const namespace = `itx-${id}`;
  // Interface names are at most 15 bytes.
  const hostVeth = `itxh${id}`.slice(0, 15);
  const peerVeth = `itxn${id}`.slice(0, 15);
  const inside = ["ip", "netns", "exec", namespace];
  const [hostAddress, peerAddress] = await freeSubnet();

  let removed = false;
  const remove = async () => {
    if (removed) return;
    removed = true;
    // Deleting one end deletes the pair; the namespace's end goes with the namespace.
    await ip(["link", "del", hostVeth]).catch(() => {});
    await ip(["netns", "del", namespace]).catch(() => {});
  };
  try {
    await ip(["netns", "add", namespace]);
    await ip(["link", "add", hostVeth, "type", "veth", "peer", "name", peerVeth]);
    await ip(["link", "set", peerVeth, "netns", namespace]);
    await ip(["addr", "add", `${hostAddress}/30`, "dev", hostVeth]);
    await ip(["link", "set", hostVeth, "up"]);
    await ip(["-n", namespace, "addr", "add", `${peerAddress}/30`, "dev", peerVeth]);
    await ip(["-n", namespace, "link", "set", peerVeth, "up"]);
    await ip(["-n", namespace, "link", "set", "lo", "up"]);
    if (options.rateMbit !== undefined) await limitRate(hostVeth, options.rateMbit);
  } catch (error) {
    await remove();
    throw error;
  }
  return {
    namespace,
    hostAddress,
    peerAddress,
    commandPrefix: inside,
    async cut(how = "down") {
      if (how === "down") {
        await ip(["-n", namespace, "link", "set", peerVeth, "down"]);
        return;
      }
      await ip(["neigh", "replace", peerAddress, ...NOWHERE, "dev", hostVeth]);
      await ip(["-n", namespace, "neigh", "replace", hostAddress, ...NOWHERE, "dev", peerVeth]);
    },
    async restore() {
      await ip(["-n", namespace, "link", "set", peerVeth, "up"]);
      await ip(["neigh", "del", peerAddress, "dev", hostVeth]).catch(() => {});
      await ip(["-n", namespace, "neigh", "del", hostAddress, "dev", peerVeth]).catch(() => {});
    },
    remove,
  };
}
