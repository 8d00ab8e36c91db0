// `redirect_https` on an http listener: every request is answered 308 with the same host and
// path on https. The Location is built only from a Host that passed validAuthority (no
// CR/LF, spaces or userinfo can get in) and the origin-form path Node's parser accepted.

import type { HttpExchange } from './exchange.ts';

let redirects = 0;

/** Counter for /metrics: requests answered with a redirect to https (this worker). */
export function redirectStats(): { redirects: number } {
  return { redirects };
}

export function redirectToHttps(ex: HttpExchange, port: number): void {
  const host = ex.host;
  if (host === undefined || host === '') {
    // HTTP/1.0 without Host: there is nothing to redirect to.
    ex.fail('client_bad_request');
    return;
  }
  let name: string;
  if (host.charCodeAt(0) === 91 /* [ */) name = host.slice(0, host.indexOf(']') + 1);
  else {
    const colon = host.indexOf(':');
    name = colon < 0 ? host : host.slice(0, colon);
  }
  redirects++;
  const location = `https://${name}${port === 443 ? '' : `:${port}`}${ex.path}`;
  ex.reply(308, ['location', location], `redirecting to ${location}\n`);
}
