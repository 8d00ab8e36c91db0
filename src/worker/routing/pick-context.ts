// The PickContext for callers whose hash key is already at hand (L4: the client address is a
// string on the socket or in the PROXY header, so there is nothing to defer).
//
// One object serves every such pick: pick() is synchronous and keeps no reference to its
// context, so refilling a shared object is safe and costs no allocation per connection or
// datagram. A caller that must hold its context across an await (a retry loop keeping the
// backends it tried) passes that set as `exclude` on each call.

import type { BackendTarget, PickContext } from './balancer/types.ts';

class KeyContext implements PickContext {
  key = '';
  exclude: ReadonlySet<BackendTarget> | undefined = undefined;

  hashKey(): string {
    return this.key;
  }
}

const shared = new KeyContext();

/** A context hashing on `key`, valid until the next call. */
export function byKey(key: string, exclude?: ReadonlySet<BackendTarget>): PickContext {
  shared.key = key;
  shared.exclude = exclude;
  return shared;
}
