import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { LogReopener } from '../../src/store/log-reopen.js'
import { CORRUPT_MARKER } from '../../src/store/open.js'
import { ValueReader } from '../../src/store/reader.js'
import { WriteQueue } from '../../src/store/write-queue.js'
import { mountSmallDisk, type SmallDisk } from '../helpers/tmpfs.js'
import { buildStore } from './helpers/build.js'
import { captureLogger, drain, open, publish, silentLogger } from './helpers/store.js'

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'torn-log-child.mjs')
const probe = mountSmallDisk()
probe.unmount()

interface Run { refused: string | undefined, acked: number[], signal: string | null, stderr: string }

/**
 * Runs torn-log-child.mjs on `disk`: fills the disk so its large write fails, frees the space, lets it acknowledge
 * `count` small writes and waits for it to SIGKILL itself.
 */
async function failThenCrash (dist: string, disk: SmallDisk, dir: string, count: number, sync: boolean): Promise<Run> {
  const proc = spawn(process.execPath, [child, dir, String(count), sync ? '1' : '0'], {
    env: { ...process.env, CULEX_STORE_DIST: dist },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  const run: Run = { refused: undefined, acked: [], signal: null, stderr: '' }
  let buffered = ''
  proc.stderr.on('data', (chunk: Buffer) => { run.stderr += chunk.toString() })
  proc.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) {
      if (line === 'ready') {
        disk.fill(16 * 1024)
        proc.stdin.write('\n')
      } else if (line.startsWith('failed ')) {
        run.refused = line.slice(7)
        disk.free()
        proc.stdin.write('\n')
      } else if (line.startsWith('ok ')) {
        run.acked.push(Number(line.slice(3)))
      }
    }
  })
  run.signal = await new Promise<string | null>((resolve) => proc.on('exit', (_code, signal) => resolve(signal)))
  return run
}

describe.skipIf(!probe.mounted)('a failed write for lack of space, then acknowledged writes, then SIGKILL', () => {
  let dist: string
  let disk: SmallDisk | undefined
  beforeAll(() => { dist = buildStore() }, 120_000)
  afterEach(() => { disk?.unmount() })

  const cases = [
    // more than the rest of the log's 32 KiB block: read back, LevelDB reported the records behind the torn one as corrupt
    { sync: false, count: 1000, what: 'acknowledged writes after the failed one, past its log block' },
    // within the block: read back, LevelDB took the torn record for the end of the log and dropped them silently
    { sync: true, count: 50, what: 'acknowledged writes after the failed one, within its log block' },
    { sync: false, count: 0, what: 'nothing written after the failed one (no reopen yet)' }
  ]
  for (const { sync, count, what } of cases) {
    it(`opens the store again and keeps every acknowledged message (sync: ${String(sync)}, ${what})`, async () => {
      disk = mountSmallDisk('16m')
      const dir = path.join(disk.dir, 'store')
      const run = await failThenCrash(dist, disk, dir, count, sync)
      expect(run.refused, `the large write is refused for lack of space: ${run.stderr}`).toBe('ERR_STORE_WRITE')
      expect(run.signal).toBe('SIGKILL')
      expect(run.acked).toHaveLength(count)

      const store = await open(dir)
      try {
        const topics = (await drain(store.outgoingStream({ id: 'sub' })) as Array<{ topic: string }>).map(p => p.topic)
        const expected = [...Array.from({ length: 10 }, (_, i) => `b/${i}`), ...run.acked.map(i => `a/${i}`)]
        expect(topics, 'every acknowledged message, in order, and not the refused one').toEqual(expected)
      } finally {
        await store.close()
      }
      expect(existsSync(path.join(dir, CORRUPT_MARKER))).toBe(false)
    }, 60_000)
  }
})

describe.skipIf(!probe.mounted)('a disk that stays full after a failed write', () => {
  let disk: SmallDisk | undefined
  afterEach(() => { disk?.unmount() })

  it('fails writes at once while there is no room to retire the log, keeps serving reads, and writes again once there is', async () => {
    disk = mountSmallDisk('16m')
    const dir = path.join(disk.dir, 'store')
    const { logger, lines } = captureLogger()
    let store = await open(dir, { logger })
    try {
      await store.addSubscriptions({ id: 'sub' }, [{ topic: '#', qos: 1 }])
      await store.storeRetained({ cmd: 'publish', topic: 'r', payload: Buffer.from('kept'), qos: 1, retain: true })
      await store.outgoingEnqueueCombi([{ clientId: 'sub', qos: 1 }], publish('b/0', 'before', { brokerId: 'b', brokerCounter: 1 }))

      disk.fill(16 * 1024)
      const big = store.outgoingEnqueueCombi([{ clientId: 'sub', qos: 1 }], publish('big', Buffer.alloc(512 * 1024), { brokerId: 'b', brokerCounter: 2 }))
      await expect(big).rejects.toMatchObject({ code: 'ERR_STORE_WRITE' })
      const small = store.outgoingEnqueueCombi([{ clientId: 'sub', qos: 1 }], publish('c/0', 'refused', { brokerId: 'b', brokerCounter: 3 }))
      await expect(small).rejects.toThrow(/needs \d+ bytes free to recover from a failed write/)
      expect((await drain(store.createRetainedStreamCombi(['r'])) as Array<{ payload: Buffer }>).map(p => p.payload.toString()),
        'a stored value is read from disk during the full disk').toEqual(['kept'])

      disk.free()
      await store.outgoingEnqueueCombi([{ clientId: 'sub', qos: 1 }], publish('c/1', 'after', { brokerId: 'b', brokerCounter: 4 }))
      expect(lines.filter(l => l.msg === 'store reopened after a failed write')).toHaveLength(1)
      await store.close()
      store = await open(dir)
      const topics = (await drain(store.outgoingStream({ id: 'sub' })) as Array<{ topic: string }>).map(p => p.topic)
      expect(topics).toEqual(['b/0', 'c/1'])
      expect((await drain(store.createRetainedStreamCombi(['r'])) as Array<{ payload: Buffer }>).map(p => p.payload.toString())).toEqual(['kept'])
    } finally {
      await store.close()
    }
  }, 60_000)

  it('serves a read issued while the database is being reopened, with the value as of the read (seeded, 40 rounds)', async () => {
    disk = mountSmallDisk('16m')
    const dir = path.join(disk.dir, 'store')
    const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
    await db.open()
    const logger = silentLogger()
    const reopener = new LogReopener(db, dir, logger)
    // nothing tracked: every read goes to LevelDB
    const queue = new WriteQueue({ db, dir, sync: false, logger, tracked: () => false, reopener })
    const reader = new ValueReader(db, queue, reopener)
    let seed = 2011
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    // abstract-level's events while it closes and opens again, or some turns of the event loop after the write
    const moments = ['closing', 'closed', 'opening', 'open', 'hops'] as const
    const put = (value: string): Promise<void> => queue.commit([{ type: 'put', key: 'k', value: Buffer.from(value) }])
    try {
      for (let round = 0; round < 40; round++) {
        await put(`v${round}`)
        disk.fill(16 * 1024)
        await expect(queue.commit([{ type: 'put', key: 'big', value: Buffer.alloc(512 * 1024) }])).rejects.toMatchObject({ code: 'ERR_STORE_WRITE' })
        disk.free()
        // this write's batch reopens the database first; the read lands before, during or after that
        const next = put(`w${round}`)
        const moment = moments[Math.floor(random() * moments.length)]
        if (moment === 'hops') {
          const hops = Math.floor(random() * 12)
          for (let i = 0; i < hops; i++) await (random() < 0.5 ? Promise.resolve() : nextTurn())
        } else {
          await new Promise(resolve => db.once(moment, resolve))
        }
        const read = reader.read(['k'])
        const later = put(`x${round}`)
        const [value] = await read
        expect([`v${round}`, `w${round}`], `round ${round}, read at ${moment}`).toContain(value?.toString())
        await Promise.all([next, later])
        expect((await reader.read(['k']))[0]?.toString()).toBe(`x${round}`)
      }
      expect(reopener.reopens).toBe(40)
    } finally {
      await queue.close()
      await reopener.close()
      await db.close()
    }
  }, 60_000)
})
