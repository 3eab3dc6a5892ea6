import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, endClient } from '../helpers/clients.js'
import { ensureBuilt, killAllChildren, removeDir, runCli, startArgs, startCli, tempDataDir } from '../helpers/cli.js'

/** `culex store` and `culex sessions` on a data directory the broker wrote and then released. */
describe('culex store and culex sessions', () => {
  beforeAll(async () => { await ensureBuilt() }, 120_000)
  afterAll(async () => { await killAllChildren() })

  it('lists, shows and purges a stored session, and checks the store', async () => {
    const dataDir = await tempDataDir()
    try {
      const cli = await startCli(startArgs(dataDir))
      const url = `mqtt://127.0.0.1:${cli.ports.mqtt}`
      const sub = await connectClient(url, { clientId: 'meter-7', clean: false })
      await sub.subscribeAsync('meters/#', { qos: 1 })
      await endClient(sub)
      const pub = await connectClient(url, { clientId: 'pub' })
      for (let i = 0; i < 3; i++) await pub.publishAsync('meters/7', `reading ${i}`, { qos: 1 })
      await endClient(pub)

      const locked = await runCli(['sessions', 'list', '--data-dir', dataDir])
      expect(locked.code).toBe(1)
      expect(locked.stderr).toContain('[ERR_STORE_LOCKED]')
      expect(await cli.stop()).toBe(0)

      const list = await runCli(['sessions', 'list', '--data-dir', dataDir])
      expect(list.code).toBe(0)
      expect(list.stdout).toMatch(/^meter-7\t1\t3\t0\t/m)
      const show = await runCli(['sessions', 'show', 'meter-7', '--data-dir', dataDir])
      expect(JSON.parse(show.stdout)).toMatchObject({ clientId: 'meter-7', queued: 3, subscriptions: [{ topic: 'meters/#', qos: 1 }] })

      const check = await runCli(['store', 'check', '--data-dir', dataDir])
      expect(check.code).toBe(0)
      expect(check.stdout).toContain('healthy, format version 2')

      const purge = await runCli(['sessions', 'purge', 'meter-7', '--data-dir', dataDir])
      expect(purge.stdout).toContain('purged session meter-7 (3 queued message(s), 1 subscription(s))')
      const missing = await runCli(['sessions', 'show', 'meter-7', '--data-dir', dataDir])
      expect(missing.code).toBe(1)
    } finally {
      await removeDir(dataDir)
    }
  }, 60_000)

  it('finds a corrupt store, refuses to start on it, and repair moves it aside', async () => {
    const dataDir = await tempDataDir()
    try {
      await mkdir(path.join(dataDir, 'store'), { recursive: true })
      await writeFile(path.join(dataDir, 'store', 'CURRENT'), 'MANIFEST-999999\n')
      const check = await runCli(['store', 'check', '--data-dir', dataDir])
      expect(check.code).toBe(1)
      expect(check.stdout).toContain('problem:')
      const start = await runCli(startArgs(dataDir))
      expect(start.code).toBe(1)
      expect(start.stderr).toMatch(/ERR_STORE_(CORRUPT|OPEN)/)
      expect(start.stderr).toContain(path.join(dataDir, 'store'))
      const repair = await runCli(['store', 'repair', '--data-dir', dataDir])
      expect(repair.code).toBe(0)
      expect(repair.stdout).toContain('.corrupt-')
      const cli = await startCli(startArgs(dataDir))
      expect(await cli.stop()).toBe(0)
    } finally {
      await removeDir(dataDir)
    }
  }, 60_000)
})
