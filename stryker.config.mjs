// StrykerJS mutation testing of routing and the balancers (not part of CI). The command
// runner runs the balancer and router suites once per mutant, stopping at the first failure
// (FIBERLB_TEST_BAIL).
//
// `npx stryker run` does it all in one go, but slowly (hours on 2 cores): instrumented, the
// maglev fill loop runs ~25x slower, and every test that builds a 65521-slot table pays for it
// in every mutant's run. Three runs give the same verdicts in ~70 minutes:
//   B=src/worker/routing/balancer
//   # everything but the fill loop, hash32 and the router (~60 min, suites ~15 s per run)
//   npx stryker run --mutate "$B/index.ts,$B/ip-hash.ts,$B/least-connections.ts,$B/p2c.ts,\
//     $B/random.ts,$B/rehash.ts,$B/round-robin.ts,$B/weighted-round-robin.ts,$B/weights.ts,\
//     src/worker/routing/pick-context.ts,src/worker/routing/pool-runtime.ts,\
//     $B/maglev.ts:1-51,$B/maglev.ts:71-106"
//   # the fill loop (buildMaglevTable from "const due"; move the ranges with it) and hash32
//   npx stryker run --mutate "$B/maglev.ts:52-70,$B/hash.ts:1-23"
//   # the router and its route table: only the router suites (router, router-table) exercise
//   # them, so they run alone
//   STRYKER_TESTS=router npx stryker run --mutate "src/worker/routing/router.ts,\
//     src/worker/routing/route-table.ts,src/worker/routing/radix.ts"
// Header rewriting, the limiters and config validation have fast unit suites of their own
// (2026-12-01: headers 91.8%, limiters 90.8%, parsers 94.7%, health 94.7%, rate-limit schema
// 93.4%; every survivor left was judged equivalent or unreachable), each run alone:
//   STRYKER_TESTS="headers.test" npx stryker run --mutate src/worker/http/headers.ts
//   STRYKER_TESTS="token-bucket rate-limit-keys" npx stryker run \
//     --mutate "src/shared/token-bucket.ts,src/worker/ratelimit/keys.ts"
//   STRYKER_TESTS="request-limits connection-limits" npx stryker run \
//     --mutate "src/worker/ratelimit/request-limits.ts,src/worker/ratelimit/connection-limits.ts"
//   STRYKER_TESTS="config-parsing" npx stryker run --mutate "src/shared/cidr.ts,\
//     src/config/address.ts,src/config/duration.ts,src/config/size.ts"
//   STRYKER_TESTS="config-health" npx stryker run --mutate src/config/validate-health.ts
//   STRYKER_TESTS="config-rate-limit" npx stryker run --mutate src/config/rate-limit-schema.ts
// (while a run's sandbox exists, lint only `src test scripts`: biome trips over its biome.json).
// STRYKER_REPORT names the JSON report of a run (default reports/mutation/mutation.json).
//
// tsconfigFile names no file on purpose: Stryker would rewrite tsconfig.json through the
// TypeScript JS API, which TypeScript 7 no longer has; tsx runs the sandbox's .ts files as is.

const tests = process.env.STRYKER_TESTS ?? 'balancer router';

export default {
  testRunner: 'command',
  commandRunner: { command: `FIBERLB_TEST_BAIL=1 node scripts/run-tests.mjs ${tests}` },
  mutate: ['src/worker/routing/**/*.ts'],
  coverageAnalysis: 'off',
  concurrency: 2,
  // Infinite-loop mutants wait for this; survivors must finish well inside it.
  timeoutFactor: 1.5,
  timeoutMS: 10_000,
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: process.env.STRYKER_REPORT ?? 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  tsconfigFile: 'no-tsconfig-rewrite.json',
};
