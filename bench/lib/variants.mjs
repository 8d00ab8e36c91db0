// FiberLB config variants shared by the bench targets (bench/lib/targets.mjs) and the HTTP
// profiler (bench/profile-http.mjs): the keys each one adds to bench/lib/configs.mjs's config.

/** Pool keys for fiberlb-health: every issue-7 mechanism on, none of them ever triggered. */
const HEALTH_POOL = `        health_check: { type: http, path: /, interval: 1s, timeout: 500ms }
        outlier_detection: { consecutive_failures: 5, on_status: [502, 503, 504] }
        retry: { attempts: 2, on_status: [502, 503] }
        slow_start: 10s
`;

export const VARIANTS = {
  plain: {},
  // Health checks, outlier detection, retries, slow start and circuit breakers (none hit).
  health: { poolExtra: HEALTH_POOL, backendExtra: ', max_connections: 100000, max_requests: 100000' },
  // A rate limit that is never hit (rate and burst 1,000,000/s).
  ratelimit: { listenerExtra: 'rate_limit: { key: client_ip, rate: 1000000, burst: 1000000 }' },
  // Every request in an access log file.
  log: { accessLog: true },
};
