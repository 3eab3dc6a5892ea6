import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
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

describe('aedes-persistence 11 abstract suite', () => {
  let dist: string
  beforeAll(() => { dist = buildStore() }, 120_000)

  it('passes all 50 tests against the built LevelStore', () => {
    const result = spawnSync(process.execPath, ['--test', '--test-reporter=tap', runner], {
      env: { ...process.env, CULEX_STORE_DIST: dist },
      encoding: 'utf8',
      timeout: 120_000
    })
    const summary = parseTap(result.stdout)
    const detail = summary.failures.length > 0
      ? `failed: ${summary.failures.join('; ')}\n${result.stdout.slice(-4000)}`
      : `${result.stdout.slice(-2000)}${result.stderr}`
    expect(summary, detail).toEqual({ tests: 50, pass: 50, fail: 0, failures: [] })
    expect(result.status, detail).toBe(0)
  }, 150_000)
})
