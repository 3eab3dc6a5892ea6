import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Brokers bind port 0 and use temp dirs, so files can run in parallel; two workers match the 2-core target.
    pool: 'forks',
    maxWorkers: 2
  }
})
