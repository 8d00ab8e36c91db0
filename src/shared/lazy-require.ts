// A CommonJS package loaded on its first use, not at startup: the Chainfire (etcd3, gRPC) and
// Redis clients cost a process ~26 MB and ~360 ms to load, and a FiberLB on a file source
// without `scope: global` limits never uses them. Types still come from `import type`.

import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

/** `id`'s exports, required the first time the returned function is called. */
export function lazyRequire<T>(id: string): () => T {
  let mod: T | undefined;
  return () => {
    mod ??= load(id) as T;
    return mod;
  };
}
