import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir } from '../helpers/cli.js'
import { mosquittoPub, mosquittoSub } from '../e2e/support/mosquitto.js'
import { publishMany } from './support.js'

/** The built `culex` command, killed with SIGKILL, and mosquitto's own clients as members. */
describe('shared subscriptions end to end', () => {
  beforeAll(async () => { await ensureBuilt() }, 180_000)
  afterEach(async () => { await killAllChildren('client') })
  afterAll(async () => { await killAllChildren() })

  it('keeps 1000 messages published while every member was offline across kill -9, for the first member back', async () => {
    const dataDir = await tempDataDir()
    try {
      let cli = await startCli(startArgs(dataDir))
      const url = (): string => `mqtt://127.0.0.1:${cli.ports.mqtt}`
      for (const id of ['w1', 'w2', 'w3']) {
        const w = await connectClient(url(), { clientId: id, clean: false })
        await w.subscribeAsync('$share/workers/tasks/#', { qos: 1 })
        await endClient(w)
      }
      const pub = await connectClient(url(), { clientId: 'crash-pub' })
      await publishMany(pub, i => `tasks/${i % 10}`, 1000, 1, 100)
      // every publish was acknowledged: now crash
      await cli.kill9()
      await endClient(pub, true)

      cli = await startCli(startArgs(dataDir))
      expect(cli.logs.some(l => l.msg === 'shared queue restored' && l.messages === 1000)).toBe(true)
      const back = await connectClient(url(), { clientId: 'w2', clean: false })
      expect(back.sessionPresent).toBe(true)
      await waitFor(() => back.received.length >= 1000, 'all 1000 at the member that came back', 20_000)
      await sleep(300)
      const got = back.received.map(r => Number(r.payload))
      expect(got.length).toBe(1000)
      expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => i))
      await endClient(back)
      expect(await cli.stop()).toBe(0)
    } finally {
      await removeDir(dataDir)
    }
  }, 90_000)

  it('shares messages between mosquitto_sub members of $share/g/jobs/#', async () => {
    const dataDir = await tempDataDir()
    try {
      const cli = await startCli(startArgs(dataDir))
      const port = cli.ports.mqtt
      const subs = [0, 1].map(i => mosquittoSub(port, ['-t', '$share/g/jobs/#', '-q', '1', '-v', '-i', `mosq-${i}`]))
      expect(await Promise.all(subs.map(async s => await s.subscribed))).toEqual([[1], [1]])
      for (let i = 0; i < 10; i++) {
        const r = await mosquittoPub(port, ['-t', `jobs/${i}`, '-m', `job-${i}`, '-q', '1'])
        expect(r.code).toBe(0)
      }
      await waitFor(() => subs[0].messages().length + subs[1].messages().length >= 10, '10 jobs', 10_000)
      await sleep(300)
      const lines = [...subs[0].messages(), ...subs[1].messages()].sort()
      expect(lines).toEqual(Array.from({ length: 10 }, (_, i) => `jobs/${i} job-${i}`).sort())
      expect(subs.map(s => s.messages().length)).toEqual([5, 5])
      expect(subs.flatMap(s => s.publishes()).every(p => p.qos === 1 && !p.retain)).toBe(true)
      for (const s of subs) s.kill('SIGKILL')
      expect(await cli.stop()).toBe(0)
    } finally {
      await removeDir(dataDir)
    }
  }, 30_000)
})
