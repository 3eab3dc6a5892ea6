import { spawn } from 'node:child_process'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { checkStore, repairStore } from '../../src/store/index.js'
import { decodeRecord, encodeJsonRecord } from '../../src/store/codec.js'
import { FORMAT_VERSION } from '../../src/store/layout.js'
import { buildStore } from './helpers/build.js'
import { captureLogger, drain, open, publish, TempDirs } from './helpers/store.js'

const dirs = new TempDirs()
afterEach(async () => { await dirs.cleanup() })

async function raw (dir: string, write: (db: Level<string, Buffer>) => Promise<void>): Promise<void> {
  const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
  await db.open()
  await write(db)
  await db.close()
}

async function populated (): Promise<string> {
  const dir = await dirs.make()
  const store = await open(dir)
  await store.addSubscriptions({ id: 'c1' }, [{ topic: 't/#', qos: 1 }])
  for (let i = 1; i <= 20; i++) {
    await store.outgoingEnqueueCombi([{ clientId: 'c1', qos: 1 }], publish(`t/${i}`, 'x'.repeat(2000), { brokerId: 'b', brokerCounter: i }))
  }
  await store.storeRetained({ cmd: 'publish', topic: 'r', payload: Buffer.from('v'), qos: 0, retain: true })
  await store.close()
  return dir
}

describe('opening a directory that is not ours to use', () => {
  it('refuses a newer format version, naming the path and the version', async () => {
    const dir = await populated()
    await raw(dir, async (db) => {
      const { encodeRecord } = await import('../../src/store/codec.js')
      await db.put('m!format', encodeRecord({ formatVersion: FORMAT_VERSION + 1 }))
    })
    const err = await open(dir).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_STORE_VERSION' })
    expect((err as Error).message).toContain(dir)
    expect((err as Error).message).toContain(`version ${FORMAT_VERSION + 1}`)
    const check = await checkStore(dir)
    expect(check).toMatchObject({ ok: false, formatVersion: FORMAT_VERSION + 1 })
  })

  it('opens a version 1 directory (JSON values only): it keeps every queued message and is marked version 2', async () => {
    const dir = await populated()
    const before = await open(dir)
    const expected = await drain(before.outgoingStream({ id: 'c1' }))
    await before.close()
    await raw(dir, async (db) => {
      for await (const [key, value] of db.iterator()) {
        const { fields, meta } = decodeRecord(value)
        await db.put(key, key === 'm!format' ? encodeJsonRecord({ formatVersion: 1 }) : encodeJsonRecord(fields, meta))
      }
    })
    expect((await checkStore(dir)).formatVersion).toBe(1)
    const store = await open(dir)
    expect(await drain(store.outgoingStream({ id: 'c1' }))).toEqual(expected)
    expect((await store.subscriptionsByClient({ id: 'c1' })).map(s => s.topic)).toEqual(['t/#'])
    await store.close()
    expect(await checkStore(dir)).toMatchObject({ ok: true, formatVersion: 2 })
  })

  it('refuses a directory this process already has open', async () => {
    const dir = await dirs.make()
    const store = await open(dir)
    const err = await open(dir).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_STORE_LOCKED' })
    expect((err as Error).message).toContain(`${dir} is in use by another culex process`)
    await store.close()
  })

  describe('held by another process', () => {
    let dist: string
    beforeAll(() => { dist = buildStore() }, 120_000)

    it('fails open, check and repair with ERR_STORE_LOCKED', async () => {
      const dir = await populated()
      const holder = spawn(process.execPath, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/hold-open.mjs'), dir], {
        env: { ...process.env, CULEX_STORE_DIST: dist }, stdio: ['ignore', 'pipe', 'inherit']
      })
      try {
        await new Promise<void>((resolve, reject) => {
          holder.stdout.on('data', (chunk: Buffer) => { if (chunk.toString().includes('ready')) resolve() })
          holder.on('exit', (code) => reject(new Error(`holder exited with ${code}`)))
        })
        await expect(open(dir)).rejects.toMatchObject({ code: 'ERR_STORE_LOCKED' })
        await expect(checkStore(dir)).rejects.toMatchObject({ code: 'ERR_STORE_LOCKED' })
        await expect(repairStore(dir)).rejects.toMatchObject({ code: 'ERR_STORE_LOCKED' })
      } finally {
        holder.kill('SIGKILL')
      }
    }, 60_000)
  })
})

describe('corruption', () => {
  it('refuses undecodable values and names the path, the key and the way out', async () => {
    const dir = await populated()
    await raw(dir, async (db) => { await db.put('o!c1!0000000000000099', Buffer.from('not a record')) })
    const err = await open(dir).catch((e: unknown) => e) as Error & { code: string }
    expect(err.code).toBe('ERR_STORE_CORRUPT')
    expect(err.message).toContain(dir)
    expect(err.message).toContain('o!c1!0000000000000099')
    expect(err.message).toContain('culex store check')
    expect(err.message).toContain('store.onCorrupt: moveAside')
    const check = await checkStore(dir)
    expect(check.ok).toBe(false)
    expect(check.problems.join('\n')).toContain('o!c1!0000000000000099')
    expect(check.counts).toMatchObject({ subscriptions: 1, queued: 20, retained: 1, sessions: 1 })
  })

  it('refuses data without a format record instead of starting empty', async () => {
    const dir = await dirs.make()
    await raw(dir, async (db) => { await db.put('s!c1!t', Buffer.from('x')) })
    await expect(open(dir)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT', message: expect.stringContaining('format record') })
  })

  it('notices records LevelDB drops from a damaged log, and keeps failing until someone decides', async () => {
    const dir = await populated()
    const log = (await readdir(dir)).find((f) => f.endsWith('.log')) as string
    const bytes = await readFile(path.join(dir, log))
    expect(bytes.length).toBeGreaterThan(30_000)
    for (let i = 1000; i < bytes.length - 1000; i += 97) bytes[i] ^= 0x5a
    await writeFile(path.join(dir, log), bytes)

    await expect(open(dir)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT', message: expect.stringContaining('dropped damaged records') })
    // LevelDB has deleted the damaged log by now; the marker keeps the failure
    await expect(open(dir)).rejects.toMatchObject({ code: 'ERR_STORE_CORRUPT', message: expect.stringContaining('CULEX-CORRUPT') })
    expect((await checkStore(dir)).problems[0]).toContain('CULEX-CORRUPT')

    const { movedTo } = await repairStore(dir)
    expect(movedTo.startsWith(`${dir}.corrupt-`)).toBe(true)
    expect((await stat(path.join(movedTo, 'CULEX-CORRUPT'))).isFile()).toBe(true)
    expect(await readdir(dir)).toEqual([])
    const fresh = await open(dir)
    expect(fresh.stats()).toMatchObject({ sessions: 0, retained: 0 })
    await fresh.close()
  })

  it('with onCorrupt: moveAside, moves the directory aside, logs an error line and starts empty', async () => {
    const dir = await populated()
    await raw(dir, async (db) => { await db.put('s!c1!bad', Buffer.from([9, 9, 9])) })
    const { logger, lines } = captureLogger()
    const store = await open(dir, { onCorrupt: 'moveAside', logger })
    expect(store.stats()).toMatchObject({ sessions: 0, retained: 0, queuedMessages: 0 })
    const line = lines.find((l) => l.msg === 'corrupt store moved aside, starting empty')
    expect(line).toMatchObject({ level: 50, dir })
    expect(String(line?.movedTo)).toContain('.corrupt-')
    await store.close()
    // the old data is still there for a human to look at
    const check = await checkStore(String(line?.movedTo))
    expect(check.counts.queued).toBe(20)
  })
})

describe('retained values', () => {
  it('are decoded when read: a bad one is skipped with an error line, and check reports it', async () => {
    const dir = await populated()
    await raw(dir, async (db) => { await db.put('r!bad', Buffer.from([9, 9, 9])) })
    const { logger, lines } = captureLogger()
    const store = await open(dir, { logger })
    const found = await drain(store.createRetainedStreamCombi(['#'])) as Array<Record<string, unknown>>
    expect(found.map((p) => p.topic)).toEqual(['r'])
    expect(lines.find((l) => l.msg === 'undecodable retained message skipped')).toMatchObject({ level: 50, topic: 'bad' })
    await store.close()
    expect((await checkStore(dir)).problems).toEqual([expect.stringContaining('"r!bad"')])
  })
})

describe('checkStore', () => {
  it('reports a healthy store with its counts', async () => {
    const dir = await populated()
    const store = await open(dir)
    await store.outgoingUpdate({ id: 'c1' }, publish('t/1', 'x', { brokerId: 'b', brokerCounter: 1, messageId: 1 }))
    await store.incomingStorePacket({ id: 'p' }, publish('x', 'y', { qos: 2, messageId: 4 }))
    await store.incomingWrite({ id: 'p' }, 4)
    await store.setup({ id: 'b', counter: 0 })
    await store.putWill({ id: 'c1' }, { topic: 'w', payload: Buffer.from('bye'), qos: 0, retain: false })
    await store.close()
    expect(await checkStore(dir)).toEqual({
      ok: true,
      problems: [],
      formatVersion: FORMAT_VERSION,
      counts: { keys: 25, sessions: 2, subscriptions: 1, queued: 20, inflight: 1, incoming: 1, wills: 1, retained: 1 }
    })
    const reopened = await open(dir)
    expect((await drain(reopened.outgoingStream({ id: 'c1' }))).length).toBe(20)
    await reopened.close()
  })

  it('accepts an empty directory and refuses a missing one', async () => {
    const dir = await dirs.make()
    expect(await checkStore(dir)).toMatchObject({ ok: true, problems: [] })
    await expect(checkStore(path.join(dir, 'nope'))).rejects.toMatchObject({ code: 'ERR_STORE_OPEN' })
    await expect(repairStore(path.join(dir, 'nope'))).rejects.toMatchObject({ code: 'ERR_STORE_OPEN' })
  })
})
