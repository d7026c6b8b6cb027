// Health checks: probes (checkers.ts), the per-endpoint state machine (state.ts), which endpoints
// to check (specs.ts), and the scheduler (monitor.ts).

export * from './checkers.js';
export * from './monitor.js';
export * from './specs.js';
export * from './state.js';
