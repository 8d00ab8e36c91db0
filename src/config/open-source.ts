// Which ConfigSource a config file asks for: the file itself, or Chainfire (source.type).

import { FileSource } from './file-source.ts';
import type { ConfigSource } from './source.ts';
import { ChainfireSource } from './sources/chainfire/source.ts';

export async function openConfigSource(file: string): Promise<ConfigSource> {
  const local = new FileSource(file);
  // An invalid file stays a FileSource: its load() reports every issue with file:line:col.
  const r = await local.load();
  await local.close();
  if (r.ok && r.config.static.source.type === 'chainfire')
    return new ChainfireSource(file, r.config.static.source);
  return new FileSource(file);
}
