import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'
import { buildStore } from './helpers/build.js'

const runner = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/abstract-runner.mjs')

interface TapSummary {
  tests: number
  pass: number
  fail: number
  failures: string[]
}

function parseTap (output: string): TapSummary {
  const count = (name: string): number => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(output)?.[1] ?? NaN)
  // top-level results are unindented; subtests of node:test are indented
  const failures = output.split('\n').filter((line) => line.startsWith('not ok ')).map((line) => line.replace(/^not ok \d+ - /, ''))
  return { tests: count('tests'), pass: count('pass'), fail: count('fail'), failures }
}

function runSuite (dist: string, env: Record<string, string> = {}): void {
  const result = spawnSync(process.execPath, ['--test', '--test-reporter=tap', runner], {
    env: { ...process.env, CULEX_STORE_DIST: dist, ...env },
    encoding: 'utf8',
    timeout: 120_000
  })
  const summary = parseTap(result.stdout)
  const detail = summary.failures.length > 0
    ? `failed: ${summary.failures.join('; ')}\n${result.stdout.slice(-4000)}`
    : `${result.stdout.slice(-2000)}${result.stderr}`
  expect(summary, detail).toEqual({ tests: 50, pass: 50, fail: 0, failures: [] })
  expect(result.status, detail).toBe(0)
}

describe('aedes-persistence 11 abstract suite', () => {
  let dist: string
  let redis: TestRedis | undefined
  beforeAll(() => { dist = buildStore() }, 120_000)
  afterAll(async () => { await redis?.close() })

  it('passes all 50 tests against the built LevelStore', () => {
    runSuite(dist)
  }, 150_000)

  it('passes all 50 tests against the built RedisStore', async () => {
    redis = await startTestRedis()
    runSuite(dist, { STORE_TEST_REDIS_URL: redis.url })
  }, 150_000)
})
