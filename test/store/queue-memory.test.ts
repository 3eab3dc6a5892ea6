import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildStore } from './helpers/build.js'
import { TempDirs } from './helpers/store.js'

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/queue-heap-child.mjs')
const dirs = new TempDirs()
afterEach(async () => { await dirs.cleanup() })

async function heapPerMessage (dist: string, dir: string, sessions: number, perSession: number): Promise<{ queued: number, heapBytesPerMessage: number }> {
  const proc = spawn(process.execPath, ['--expose-gc', child, path.join(dir, 'store'), String(sessions), String(perSession)], {
    env: { ...process.env, CULEX_STORE_DIST: dist },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  proc.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  proc.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve))
  if (code !== 0) throw new Error(`child failed (${code}): ${err}`)
  return JSON.parse(out) as { queued: number, heapBytesPerMessage: number }
}

describe('memory of the session queues after a restart', () => {
  let dist: string
  beforeAll(() => { dist = buildStore() }, 120_000)

  it('holds a loaded queued message in at most 250 bytes of heap (1,000 sessions × 100 messages)', async () => {
    // A million queued messages must fit a broker in 600 MB (docs/performance.md, Growth): an entry loaded at start
    // kept its key and a copy of its broker id, 336 bytes in all; it now shares both.
    const { queued, heapBytesPerMessage } = await heapPerMessage(dist, await dirs.make(), 1000, 100)
    expect(queued).toBe(100_000)
    expect(heapBytesPerMessage).toBeLessThanOrEqual(250)
  }, 120_000)
})
