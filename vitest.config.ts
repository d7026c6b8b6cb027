import { defineConfig } from 'vitest/config';

// Unit tests are pure; privileged and e2e tests load BPF programs and build namespaces as root.
// Files run in separate processes (forks) so a native crash or a leaked fd stays in one file.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default'],
  },
});
