import type { Config } from 'jest';

// Nest 12 is ESM-only, so the tests run as ES modules:
// node --experimental-vm-modules node_modules/jest/bin/jest.js
// JEST_SUITE=faults selects the fault-injection suite (`npm run test:faults`), JEST_SUITE=system
// the built apps with a real browser (`npm run test:system`), instead of the unit and e2e tests.
const faults = process.env.JEST_SUITE === 'faults';
const system = process.env.JEST_SUITE === 'system';

const config: Config = {
  testEnvironment: 'node',
  // Scratch copies (.tmp/, a benchmark's snapshot, a worktree) and build output hold package.json files of the same names.
  modulePathIgnorePatterns: ['<rootDir>/.tmp/', '<rootDir>/dist/', '<rootDir>/.cache/'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^nestjs-posthog-telemetry$': '<rootDir>/libs/telemetry/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: '<rootDir>/tsconfig.json' }],
  },
  testMatch: faults
    ? ['<rootDir>/test/faults/**/*.faults-spec.ts']
    : system
      ? ['<rootDir>/test/system/**/*.system-spec.ts']
      : ['<rootDir>/libs/**/*.spec.ts', '<rootDir>/apps/**/*.spec.ts', '<rootDir>/test/**/*.e2e-spec.ts'],
  testTimeout: faults || system ? 120_000 : 30_000,
  reporters: [
    'default',
    '<rootDir>/test/support/summary-reporter.cjs',
    ...(faults ? ['<rootDir>/test/support/fault-table-reporter.cjs'] : []),
  ],
};

export default config;
