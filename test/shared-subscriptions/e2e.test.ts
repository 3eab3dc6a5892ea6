import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir } from '../helpers/cli.js'
import { mosquittoPub, mosquittoSub } from '../e2e/support/mosquitto.js'
import { adminGet, publishMany, silentMember } from './support.js'

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

  it('keeps a delayed retry\'s attempt count and due time across kill -9 (backoff set through CULEX_* variables)', async () => {
    const dataDir = await tempDataDir()
    const env = {
      CULEX_SHARED_SUBSCRIPTIONS_ACK_TIMEOUT_MS: '200',
      CULEX_SHARED_SUBSCRIPTIONS_MAX_DELIVERIES: '2',
      CULEX_SHARED_SUBSCRIPTIONS_REDELIVERY_BACKOFF_INITIAL_MS: '3000',
      CULEX_SHARED_SUBSCRIPTIONS_REDELIVERY_BACKOFF_JITTER: '0'
    }
    try {
      let cli = await startCli(startArgs(dataDir), env)
      const url = (): string => `mqtt://127.0.0.1:${cli.ports.mqtt}`
      const delayed = async (): Promise<number | undefined> =>
        (await adminGet<{ items: Array<{ delayed: number }> }>(`http://127.0.0.1:${cli.ports.admin}`, '/api/shared')).items[0]?.delayed
      const member = await silentMember(url(), 'keeper', '$share/keep/jobs', 1, false)
      const pub = await connectClient(url(), { clientId: 'keep-pub' })
      await pub.publishAsync('jobs', 'retry-me', { qos: 1 })
      await waitFor(() => member.publishes().length === 1, 'the first attempt')
      const firstAttempt = member.publishTimes()[0]
      // not acknowledged within 200 ms: it waits 3 s for its second attempt, with its record rewritten
      await waitFor(async () => await delayed() === 1, 'the retry delayed')
      // the retry's record is staged as it is delayed and committed in the next batch; a retained QoS 1 message is
      // acknowledged once it is on disk, and batches commit in order: after its PUBACK the record is there too
      await pub.publishAsync('barrier', 'x', { qos: 1, retain: true })
      await cli.kill9()
      member.destroy()
      await endClient(pub, true)

      cli = await startCli(startArgs(dataDir), env)
      expect(cli.logs.some(l => l.msg === 'shared queue restored' && l.messages === 1)).toBe(true)
      expect(await delayed()).toBe(1)
      const back = await silentMember(url(), 'keeper', '$share/keep/jobs', 1, false)
      await waitFor(() => back.publishes().length === 1, 'the second attempt, once due', 10_000)
      // due 3 s after the ack timeout of the first attempt, however long the restart took
      expect(back.publishTimes()[0] - firstAttempt).toBeGreaterThanOrEqual(200 + 3000 - 50)
      expect(back.publishes()[0]).toMatchObject({ dup: true })
      // the count survived: this was attempt 2 of 2, so its timeout ends it as a dead letter
      const dead = await cli.waitForLog(l => l.msg === 'shared message dead-lettered', 'the dead letter', 5000)
      expect(dead).toMatchObject({ reason: 'max-deliveries', attempts: 2, share: '$share/keep/jobs' })
      expect(back.publishes()).toHaveLength(1)
      // its envelope has both attempts' times, the one before the crash included
      const admin = `http://127.0.0.1:${cli.ports.admin}`
      await waitFor(async () => (await adminGet<{ items: unknown[] }>(admin, '/api/dead-letters')).items.length === 1, 'the dead letter listed')
      const [letter] = (await adminGet<{ items: Array<{ id: string }> }>(admin, '/api/dead-letters')).items
      const envelope = await adminGet<{ attemptTimes: string[] }>(admin, `/api/dead-letters/${letter.id}`)
      const [sent1, sent2] = envelope.attemptTimes.map(t => Date.parse(t))
      expect(envelope.attemptTimes).toHaveLength(2)
      expect(firstAttempt - sent1).toBeGreaterThanOrEqual(0)
      expect(firstAttempt - sent1).toBeLessThan(1000)
      expect(sent2 - sent1).toBeGreaterThanOrEqual(200 + 3000)
      back.destroy()
      expect(await cli.stop()).toBe(0)
    } finally {
      await removeDir(dataDir)
    }
  }, 60_000)

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
