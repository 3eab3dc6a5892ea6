import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildStore } from './helpers/build.js'
import { TempDirs } from './helpers/store.js'

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/queue-heap-child.mjs')
const retainedChild = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/retained-heap-child.mjs')
const dirs = new TempDirs()
afterEach(async () => { await dirs.cleanup() })

/** Runs a measuring child (--expose-gc) on the built store and returns the JSON it prints. */
async function measure<T> (dist: string, script: string, args: readonly string[]): Promise<T> {
  const proc = spawn(process.execPath, ['--expose-gc', script, ...args], {
    env: { ...process.env, CULEX_STORE_DIST: dist },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  proc.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  proc.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve))
  if (code !== 0) throw new Error(`child failed (${code}): ${err}`)
  return JSON.parse(out) as T
}

async function heapPerMessage (dist: string, dir: string, sessions: number, perSession: number): Promise<{ queued: number, heapBytesPerMessage: number }> {
  return await measure(dist, child, [path.join(dir, 'store'), String(sessions), String(perSession)])
}

describe('memory of the session queues after a restart', () => {
  let dist: string
  beforeAll(() => { dist = buildStore() }, 120_000)

  it('holds a loaded queued message in at most 225 bytes of heap (1,000 sessions × 100 messages)', async () => {
    // A million queued messages must fit a broker in 600 MB (docs/performance.md, Growth): an entry loaded at start
    // kept its key and a copy of its broker id, 336 bytes in all; it now shares both. A queue held its entries in a
    // map by seq as well, about 25 bytes more per entry (238-241 in all) than the array it holds them in now.
    const { queued, heapBytesPerMessage } = await heapPerMessage(dist, await dirs.make(), 1000, 100)
    expect(queued).toBe(100_000)
    expect(heapBytesPerMessage).toBeLessThanOrEqual(225)
  }, 120_000)
})

async function retainedHeapPerTopic (dist: string, shape: 'bench' | 'sensors', count: number): Promise<{ topics: number, heapBytesPerTopic: number }> {
  return await measure(dist, retainedChild, [shape, String(count)])
}

describe('memory of the retained topic index', () => {
  let dist: string
  beforeAll(() => { dist = buildStore() }, 120_000)

  it('indexes a retained topic in at most 112 bytes of heap besides its string, 125 for a deeper shape (100,000 topics)', async () => {
    // Every stored retained topic adds a node or two to the tree, all of which survives into the old generation:
    // with five fields a node (the single child, the map of many, the cache of `+` lookups apart) it was 128 and
    // 140 bytes per topic; the rare parts now live on the map of a node with many children.
    for (const [shape, bound] of [['bench', 112], ['sensors', 125]] as const) {
      const { topics, heapBytesPerTopic } = await retainedHeapPerTopic(dist, shape, 100_000)
      expect(topics).toBe(100_000)
      expect(heapBytesPerTopic, shape).toBeLessThanOrEqual(bound)
    }
  }, 120_000)
})
