// Runtime services: what the config does not know and the daemon learns while running (health,
// drain, circuit breaker, least-connections load, DNS answers), turned into effective weights
// for compileConfig. Pure models with time as input, and thin shells that schedule them.
// docs/runtime.md describes the rules and the daemon's wiring. The daemon's shell over all of
// them (RuntimeService, and the kernel sampler it reads the data plane with) is imported from
// ./service.js directly: it loads the data plane's FFI, which the pure parts never need.

export * from './active-flows.js';
export * from './circuit-breaker.js';
export * from './dns.js';
export * from './drain.js';
export * from './effective-weight.js';
export * from './health/index.js';
export * from './keys.js';
export * from './least-connections.js';
export * from '../core/maglev.js';
export * from './metrics.js';
export * from './status.js';
export * from './status-text.js';
