// The admin token guards mutating admin endpoints. It is read from admin.token_file, or
// created there (mode 0600) on first start. It is never logged or returned by any endpoint.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function loadOrCreateToken(file: string | undefined): Promise<string> {
  if (!file) return randomBytes(32).toString('hex'); // usable only in-process: SIGHUP still works
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (token.length < 16) throw new Error(`admin token in ${file} is shorter than 16 characters`);
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('hex');
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return token;
}

export function tokenMatches(expected: string, header: string | undefined): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7).trim());
  const want = Buffer.from(expected);
  return given.length === want.length && timingSafeEqual(given, want);
}
