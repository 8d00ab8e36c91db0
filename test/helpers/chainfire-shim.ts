// A small gRPC server that speaks Chainfire's service names (chainfire.v1.KV/Range, .../Delete,
// chainfire.v1.Watch/Watch, chainfire.v1.Lease/...) and forwards every call to a real etcd
// member under etcd's names. This is what source.api: chainfire is verified against; it is a
// stand-in for a Chainfire server, which cannot run here. It serves ONLY the chainfire.v1
// paths, so an etcd client pointed at it gets UNIMPLEMENTED.

import * as grpc from '@grpc/grpc-js';
import {
  clientFor,
  type GenericClient,
  type ServiceName,
  serviceDefinition,
} from '../../src/config/sources/chainfire/wire.ts';
import { freeTcpPort } from './net.ts';

export interface Shim {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startChainfireShim(etcdUrl: string, port?: number): Promise<Shim> {
  const target = etcdUrl.replace(/^https?:\/\//, '');
  const creds = grpc.credentials.createInsecure();
  const up: Record<ServiceName, GenericClient> = {
    KV: clientFor('KV', 'etcd', target, creds),
    Watch: clientFor('Watch', 'etcd', target, creds),
    Lease: clientFor('Lease', 'etcd', target, creds),
  };
  const server = new grpc.Server();
  const calls = new Set<grpc.ServerDuplexStream<unknown, unknown>>();
  for (const service of ['KV', 'Watch', 'Lease'] as const) {
    const def = serviceDefinition(service, 'chainfire');
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [name, m] of Object.entries(def)) {
      if (m.requestStream) {
        impl[name] = (call: grpc.ServerDuplexStream<unknown, unknown>) => {
          calls.add(call);
          const s = up[service][name]!() as grpc.ClientDuplexStream<unknown, unknown>;
          call.on('data', (msg) => s.write(msg));
          call.on('end', () => s.end());
          call.on('cancelled', () => s.cancel());
          call.on('close', () => calls.delete(call));
          s.on('data', (msg) => call.write(msg));
          s.on('error', (err: grpc.ServiceError) =>
            call.emit('error', { code: err.code, details: err.details }),
          );
          s.on('end', () => call.end());
        };
      } else {
        impl[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          up[service][name]!(call.request, (err: grpc.ServiceError | null, res: unknown) => cb(err, res));
        };
      }
    }
    server.addService(def, impl);
  }
  const p = port ?? (await freeTcpPort());
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${p}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  return {
    url: `http://127.0.0.1:${p}`,
    stop: async () => {
      for (const c of calls) c.destroy();
      server.forceShutdown();
      for (const c of Object.values(up)) c.close();
    },
  };
}
