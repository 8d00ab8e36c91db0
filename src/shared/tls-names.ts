// How a TLS server name (SNI, or a route's host) is matched against certificate names: exact
// (case-insensitive), or a wildcard "*.example.com" covering exactly one more label
// ("a.example.com", not "example.com" nor "a.b.example.com"), as RFC 6125 §6.4.3 allows.
// One rule for `fiberlb check` (a route host no certificate covers) and the worker's SNI lookup.

/** The wildcard name that would cover `host` ("a.example.com" → "*.example.com"), or undefined. */
export function wildcardOf(host: string): string | undefined {
  const dot = host.indexOf('.');
  // "*.com" style: a wildcard needs at least two labels after it.
  if (dot <= 0 || host.indexOf('.', dot + 1) < 0) return undefined;
  return `*${host.slice(dot)}`;
}

/** Does a certificate with these (lower-case) names cover `host`? */
export function namesCover(names: readonly string[], host: string): boolean {
  const h = host.toLowerCase();
  if (names.includes(h)) return true;
  const w = wildcardOf(h);
  return w !== undefined && names.includes(w);
}
