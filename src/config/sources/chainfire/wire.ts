// gRPC service definitions for the two wire APIs, built from the etcd v3 protos that etcd3
// ships (node_modules/etcd3/proto/rpc.proto): the messages are etcd's; only the service paths
// differ. Chainfire's published API (package chainfire.v1) has KV Range/Put/Delete/Txn, Watch
// and Lease, no Compact and no Auth service. The mapping below is the whole difference; it is
// verified against the test shim (test/helpers/chainfire-shim.ts), not a Chainfire server.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Grpc from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import { lazyRequire } from '../../../shared/lazy-require.ts';

const grpc = lazyRequire<typeof Grpc>('@grpc/grpc-js');
const protoLoader = lazyRequire<typeof ProtoLoader>('@grpc/proto-loader');

export type WireApi = 'etcd' | 'chainfire';
export type ServiceName = 'KV' | 'Watch' | 'Lease';

/** Our method name → [etcd method, chainfire path]. */
const METHODS: Record<ServiceName, Record<string, readonly [string, string]>> = {
  KV: {
    Range: ['Range', '/chainfire.v1.KV/Range'],
    Put: ['Put', '/chainfire.v1.KV/Put'],
    Delete: ['DeleteRange', '/chainfire.v1.KV/Delete'],
    Txn: ['Txn', '/chainfire.v1.KV/Txn'],
  },
  Watch: { Watch: ['Watch', '/chainfire.v1.Watch/Watch'] },
  Lease: {
    LeaseGrant: ['LeaseGrant', '/chainfire.v1.Lease/LeaseGrant'],
    LeaseRevoke: ['LeaseRevoke', '/chainfire.v1.Lease/LeaseRevoke'],
    LeaseKeepAlive: ['LeaseKeepAlive', '/chainfire.v1.Lease/LeaseKeepAlive'],
  },
};

let loaded: Record<string, Grpc.ServiceDefinition> | undefined;

function etcdServices(): Record<string, Grpc.ServiceDefinition> {
  if (loaded) return loaded;
  const proto = join(
    dirname(createRequire(import.meta.url).resolve('etcd3/package.json')),
    'proto',
    'rpc.proto',
  );
  // The same options etcd3 uses: snake_case fields, 64-bit numbers as strings, enums by name.
  const pkg = protoLoader().loadSync(proto, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  loaded = {
    KV: pkg['etcdserverpb.KV'] as Grpc.ServiceDefinition,
    Watch: pkg['etcdserverpb.Watch'] as Grpc.ServiceDefinition,
    Lease: pkg['etcdserverpb.Lease'] as Grpc.ServiceDefinition,
  };
  return loaded;
}

/** The service definition keyed by our method names, with `api`'s paths. */
export function serviceDefinition(service: ServiceName, api: WireApi): Grpc.ServiceDefinition {
  const etcd = etcdServices()[service]!;
  const out: Record<string, Grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [ours, [etcdName, chainfirePath]] of Object.entries(METHODS[service])) {
    const m = etcd[etcdName] as Grpc.MethodDefinition<unknown, unknown>;
    out[ours] = { ...m, path: api === 'chainfire' ? chainfirePath : m.path, originalName: ours };
  }
  return out as Grpc.ServiceDefinition;
}

export type GenericClient = Grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export function clientFor(
  service: ServiceName,
  api: WireApi,
  address: string,
  creds: Grpc.ChannelCredentials,
  options: Grpc.ChannelOptions = {},
): GenericClient {
  const Ctor = grpc().makeGenericClientConstructor(serviceDefinition(service, api), service);
  return new Ctor(address, creds, options) as unknown as GenericClient;
}
