/**
 * Schemas of single values the configuration schema (`schema.ts`) uses for
 * its keys, each with the message shown when a value does not fit.
 *
 * @module
 */
import { z } from "zod";

/** One of `ssh_options`: `Key=Value`. */
export const sshOption = z.string().regex(
  /^[A-Za-z][A-Za-z0-9]*=\S.*$/,
  'expected "Key=Value", e.g. "Ciphers=aes128-gcm@openssh.com"',
);

/** An absolute path, or one starting with `~/`. */
export const absolutePath = z.string().regex(
  /^(\/|~\/|[A-Za-z]:[\\/])/,
  'expected an absolute path or one starting with "~/"',
);

/** `HOST:PORT` of the status page, or `""` for off. */
export const listenAddress = z.string().regex(
  /^$|^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/,
  'expected "HOST:PORT", e.g. "127.0.0.1:8765", or "" for off',
);
