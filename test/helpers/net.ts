// Loopback plumbing shared by every test: free ports, CIDR literals, waiting.

import { createSocket } from 'node:dgram';
import { type AddressInfo, createServer } from 'node:net';
import type { Cidr } from '../../src/config/model.ts';
import { parseCidr } from '../../src/shared/cidr.ts';

export const HOST = '127.0.0.1';

/** A TCP port that was free a moment ago (bind :0, read it, close). */
// Ports handed out by this process: the kernel may give a just-closed ephemeral port again,
// and a test that asks twice (admin and listener) must get two different ones.
const handedOut = new Set<number>();

export async function freeTcpPort(): Promise<number> {
  for (;;) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, HOST, r));
    const { port } = s.address() as AddressInfo;
    await new Promise<void>((r) => s.close(() => r()));
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, HOST, r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(r));
  return port;
}

export function cidrs(...texts: string[]): Cidr[] {
  return texts.map((t) => {
    const r = parseCidr(t);
    if (!r.ok) throw new Error(r.reason);
    return r.value;
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
