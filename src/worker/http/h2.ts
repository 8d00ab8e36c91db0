// HTTP/2 requests (Node's compat API, from the https listener) enter the same exchange as
// HTTP/1.1 ones; only their head differs. Here it is made to look like an HTTP/1.1 head for
// header rewriting and the upstream (which speaks HTTP/1.1): pseudo-headers dropped (:method
// and :path are req.method and req.url already), :authority becomes Host when there is none
// (RFC 9113 §8.3.1), and the cookie crumbs h2 allows are joined into one header (§8.2.3).

import type { IncomingMessage } from 'node:http';

export function h2RequestHead(req: IncomingMessage): string[] {
  const raw = req.rawHeaders;
  const out: string[] = [];
  let authority: string | undefined;
  let host = false;
  let cookie: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') authority = value;
      continue;
    }
    // Node hands h2 header names lower-case.
    if (name === 'cookie') {
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    if (name === 'host') host = true;
    out.push(name, value);
  }
  if (cookie !== undefined) out.push('cookie', cookie);
  if (!host && authority !== undefined) out.unshift('host', authority);
  return out;
}
