// The admin token guards mutating admin endpoints. It is read from admin.token_file, or
// created there (mode 0600) on first start. It is never logged or returned by any endpoint.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import type { AdminConfig } from '../../config/model.ts';

export async function loadOrCreateToken(file: string | undefined): Promise<string> {
  if (!file) return randomBytes(32).toString('hex'); // usable only in-process: SIGHUP still works
  const existing = await readToken(file);
  if (existing !== undefined) return existing;
  const token = randomBytes(32).toString('hex');
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return token;
}

/** The token in `file`, or undefined if the file does not exist (never creates it). */
export async function readToken(file: string): Promise<string | undefined> {
  let token: string;
  try {
    token = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (token.length < 16) throw new Error(`too short (${token.length} characters, at least 16)`);
  return token;
}

/** RFC 9110 §11.1: the auth scheme is case-insensitive ("bearer", "BEARER" are "Bearer"). */
const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i;

export function tokenMatches(expected: string, header: string | undefined): boolean {
  const m = header === undefined ? null : BEARER.exec(header);
  if (!m) return false;
  const given = Buffer.from(m[1]!);
  const want = Buffer.from(expected);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function isLoopback(address: string): boolean {
  if (isIP(address) === 4) return address.startsWith('127.');
  const a = address.toLowerCase();
  return a === '::1' || a.startsWith('::ffff:127.');
}

/**
 * Start-up warnings about who can reach the admin API: an address beyond loopback (anyone on
 * that network can try the token; /healthz is open), and a token file that group or others
 * may read or write (its permission bits, from stat).
 */
export async function adminExposureWarnings(
  admin: Pick<AdminConfig, 'address' | 'port' | 'tokenFile'>,
): Promise<Array<{ msg: string; fields: Record<string, unknown> }>> {
  const out: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  if (!isLoopback(admin.address))
    out.push({
      msg: 'admin API listens beyond loopback; keep it on a management network and firewall it',
      fields: { address: admin.address, port: admin.port },
    });
  if (admin.tokenFile) {
    try {
      const mode = (await stat(admin.tokenFile)).mode & 0o777;
      if ((mode & 0o077) !== 0)
        out.push({
          msg: 'admin token file is accessible by group or others; chmod 600 it',
          fields: { token_file: admin.tokenFile, mode: `0${mode.toString(8)}` },
        });
    } catch {
      // Unreadable files fail loudly in loadOrCreateToken; nothing to add here.
    }
  }
  return out;
}
