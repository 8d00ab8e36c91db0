#!/usr/bin/env node
// The fiberlb executable. A cluster worker runs this same file and loads only the data plane;
// the commands, the primary and their clients (etcd, gRPC, Redis, Prometheus, autocannon) load
// in the primary and the command line only, so a worker neither pays their memory nor their
// start-up time.
import cluster from 'node:cluster';

if (cluster.isWorker) (await import('./worker/worker.ts')).runWorker();
else await import('./commands.ts');
