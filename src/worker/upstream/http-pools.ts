// PLACEHOLDER (replaced by the L7 work): undici Pool per upstream address.
import { Pool } from 'undici';
import type { BackendTarget } from '../balancer/types.ts';

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  get(t: BackendTarget): Pool {
    const k = `${t.address}:${t.port}`;
    let p = this.pools.get(k);
    if (!p) {
      p = new Pool(`http://${t.address.includes(':') ? `[${t.address}]` : t.address}:${t.port}`);
      this.pools.set(k, p);
    }
    return p;
  }
  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}
