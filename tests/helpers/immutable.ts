/**
 * Files that cannot be written even by root (Linux `chattr +i`): a ledger the
 * daemon cannot open for writing although the tests run as root.
 *
 * @module
 */

/** Make `path` unwritable for everyone, root included (`on`), or writable again. */
export async function setImmutable(path: string, on: boolean): Promise<void> {
  const out = await new Deno.Command("chattr", {
    args: [on ? "+i" : "-i", path],
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `chattr ${on ? "+i" : "-i"} ${path} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/**
 * Run `fn` with `path` immutable; it is made writable again afterwards whatever happens (a
 * temporary folder holding an immutable file could not be removed).
 */
export async function whileImmutable<T>(path: string, fn: () => Promise<T> | T): Promise<T> {
  await setImmutable(path, true);
  try {
    return await fn();
  } finally {
    await setImmutable(path, false).catch(() => {});
  }
}
