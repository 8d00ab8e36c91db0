// A config problem, located well enough for an editor to jump to it: FILE:LINE:COL when the
// source has positions (YAML), otherwise just the origin (a Chainfire key, a JSON blob).

export interface ConfigIssue {
  /** File path, or another description of where the config came from. */
  readonly origin: string;
  readonly line?: number;
  readonly col?: number;
  /** YAML-style path, e.g. "load_balancers[0].listeners[1].port"; "(root)", "(yaml)", "(file)". */
  readonly path: string;
  readonly message: string;
}

export function formatIssue(i: ConfigIssue): string {
  const where = i.line !== undefined ? `${i.origin}:${i.line}:${i.col ?? 1}` : i.origin;
  return `${where}: ${i.path}: ${i.message}`;
}
