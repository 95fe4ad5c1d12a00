import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Files whose assertions compare timing the product measures with a capture's kernel timestamps
 * (netns-probe: the reflector's max jitter within 0.2 ms of tshark's). They run after everything
 * else, on their own: with other files' processes and loopback traffic competing for the two cores,
 * the reflector's arrival stamps lagged the capture enough to move its max jitter by 0.33 ms.
 */
const TIMING_SENSITIVE = [
  'tests/integration/netns-probe.test.ts',
  'tests/integration/sip-ping-timing.test.ts',
];

export default defineConfig({
  test: {
    // Integration tests build network namespaces and start real servers; keep them from
    // fighting over the two cores.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', './tests/helpers/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['tests/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...TIMING_SENSITIVE],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: 'timing', include: TIMING_SENSITIVE, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
