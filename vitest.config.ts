import { defineConfig } from 'vitest/config';

// Two projects. `unit`: pure tests, no root, no built BPF objects (`make check` runs them in
// seconds). `privileged`: integration (loopback servers, real git), privileged (BPF programs
// loaded, BPF_PROG_TEST_RUN) and end-to-end (namespaces) tests, as root, with the build checked
// first. Files run in separate processes (forks) so a native crash or a leaked fd stays in one file.
export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'privileged',
          include: ['test/integration/**/*.test.ts', 'test/privileged/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
        },
      },
    ],
  },
});
