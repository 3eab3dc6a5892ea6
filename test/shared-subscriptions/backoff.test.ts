import { afterEach, describe, expect, it } from 'vitest'
import type { IPublishPacket } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, waitFor } from '../helpers/clients.js'
import { adminGet, endAll, members, silentMember } from './support.js'

interface GroupRow { group: string, delayed: number, delivered: number, redelivered: number, ackTimeouts: number, rejections: number, deadLettered: number, oldestUnackedMs: number }
const groupOf = async (t: TestBroker, group: string): Promise<GroupRow | undefined> =>
  (await adminGet<{ items: GroupRow[] }>(t.adminUrl, '/api/shared')).items.find(g => g.group === group)
const metricsText = async (t: TestBroker): Promise<string> => await (await fetch(`${t.adminUrl}/metrics`)).text()
const gaps = (times: number[]): number[] => times.slice(1).map((at, i) => at - times[i])
const deadLettered = (t: TestBroker): Array<Record<string, unknown>> => t.logs.filter(l => l.msg === 'shared message dead-lettered')

/**
 * Retries after an ack timeout wait out redeliveryBackoff (docs/shared-subscriptions.md, "Retries and backoff"). The
 * waits are read from when each attempt reached the member. Between two attempts there is the ack timeout (100 ms,
 * noticed by a sweep every 50 ms), then the backoff; the bounds leave room for a loaded machine (other test files
 * running alongside): 200 ms late, 50 ms early (an arrival that lagged its send more than the next one did).
 */
describe('shared subscriptions: retries with exponential backoff', () => {
  let t: TestBroker | undefined

  afterEach(async () => {
    await t?.close()
    t = undefined
  })

  const ACK_TIMEOUT = 100
  const SLACK = 50 + 200
  const EARLY = 50

  it('spaces the attempts a member never acknowledges by initialMs × multiplier^(attempt−1), then dead-letters and counts them', async () => {
    t = await startTestBroker({
      'sharedSubscriptions.ackTimeoutMs': ACK_TIMEOUT,
      'sharedSubscriptions.maxDeliveries': 4,
      'sharedSubscriptions.redeliveryBackoff.initialMs': 200,
      'sharedSubscriptions.redeliveryBackoff.multiplier': 2,
      'sharedSubscriptions.redeliveryBackoff.jitter': 0
    })
    const member = await silentMember(t.mqttUrl, 'failing', '$share/retry/jobs')
    const pub = await connectClient(t.mqttUrl, { clientId: 'retry-pub' })
    await pub.publishAsync('jobs', 'poison', { qos: 1 })
    await waitFor(() => deadLettered(t as TestBroker).length === 1, 'the dead letter after 4 attempts', 5000)
    expect(member.publishes().map(p => [p.payload.toString(), p.dup])).toEqual([['poison', false], ['poison', true], ['poison', true], ['poison', true]])
    const waited = gaps(member.publishTimes()).map(g => g - ACK_TIMEOUT)
    const backoffs = [200, 400, 800]
    waited.forEach((w, i) => {
      expect(w, `wait ${i + 1}: ${waited.join(', ')} ms`).toBeGreaterThanOrEqual(backoffs[i] - EARLY)
      expect(w, `wait ${i + 1}: ${waited.join(', ')} ms`).toBeLessThan(backoffs[i] + SLACK)
    })
    expect(deadLettered(t)[0]).toMatchObject({ reason: 'max-deliveries', attempts: 4 })

    expect(await groupOf(t, 'retry')).toMatchObject({ delivered: 4, redelivered: 3, ackTimeouts: 4, rejections: 0, deadLettered: 1, delayed: 0 })
    const text = await metricsText(t)
    expect(text).toContain('culex_shared_ack_timeouts_total{group="retry"} 4')
    expect(text).toContain('culex_shared_redeliveries_total{group="retry"} 3')
    expect(text).toContain('culex_shared_dead_letters_total{group="retry"} 1')
    expect(text).toContain('culex_shared_rejections_total{group="retry"} 0')
    member.destroy()
    await endAll([pub])
  })

  it('varies each wait by up to ± jitter', async () => {
    t = await startTestBroker({
      'sharedSubscriptions.ackTimeoutMs': ACK_TIMEOUT,
      'sharedSubscriptions.maxDeliveries': 7,
      'sharedSubscriptions.redeliveryBackoff.initialMs': 400,
      'sharedSubscriptions.redeliveryBackoff.multiplier': 1,
      'sharedSubscriptions.redeliveryBackoff.jitter': 0.5
    })
    const member = await silentMember(t.mqttUrl, 'jittery', '$share/jit/jobs')
    const pub = await connectClient(t.mqttUrl, { clientId: 'jit-pub' })
    await pub.publishAsync('jobs', 'x', { qos: 1 })
    await waitFor(() => deadLettered(t as TestBroker).length === 1, 'the dead letter after 7 attempts', 10_000)
    const waited = gaps(member.publishTimes()).map(g => g - ACK_TIMEOUT)
    expect(waited).toHaveLength(6)
    // 400 ms ± 50 %: each wait within [200, 600] ms, and not all the same
    for (const w of waited) {
      expect(w, waited.join(', ')).toBeGreaterThanOrEqual(200 - EARLY)
      expect(w, waited.join(', ')).toBeLessThan(600 + SLACK)
    }
    expect(Math.max(...waited) - Math.min(...waited), waited.join(', ')).toBeGreaterThan(40)
    member.destroy()
    await endAll([pub])
  })

  it('keeps delivering the group\'s other messages while one waits out its backoff', async () => {
    t = await startTestBroker({
      'sharedSubscriptions.ackTimeoutMs': ACK_TIMEOUT,
      'sharedSubscriptions.maxInflightPerMember': 1,
      'sharedSubscriptions.redeliveryBackoff.initialMs': 3000,
      'sharedSubscriptions.redeliveryBackoff.jitter': 0
    })
    const stuck = await silentMember(t.mqttUrl, 'stuck', '$share/flow/jobs/#')
    const pub = await connectClient(t.mqttUrl, { clientId: 'flow-pub' })
    await pub.publishAsync('jobs/slow', 'slow', { qos: 1 })
    await waitFor(() => stuck.publishes().length === 1, 'the first message at the member that will not acknowledge it')
    const [live] = await members(t.mqttUrl, 1, '$share/flow/jobs/#', 1, 'flow-live')
    await waitFor(async () => (await groupOf(t as TestBroker, 'flow'))?.delayed === 1, 'the first message delayed')
    const delayedAt = Date.now()
    for (let i = 0; i < 10; i++) await pub.publishAsync(`jobs/${i}`, String(i), { qos: 1 })
    await waitFor(() => live.received.length >= 10, 'ten newer messages at the other member', 2500)
    expect(Date.now() - delayedAt).toBeLessThan(3000)
    expect(live.received.map(r => r.payload)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
    await waitFor(() => live.received.length === 11, 'the delayed message, once due', 6000)
    expect(live.received[10]).toMatchObject({ payload: 'slow', dup: true })
    expect(Date.now() - delayedAt).toBeGreaterThanOrEqual(3000 - ACK_TIMEOUT - 50)
    stuck.destroy()
    await endAll([live, pub])
  })

  it('hash-topic: later messages of the topic wait behind the delayed one and follow it in order; other topics go on', async () => {
    t = await startTestBroker({
      'sharedSubscriptions.groupStrategies': { ordered: 'hash-topic' },
      'sharedSubscriptions.ackTimeoutMs': ACK_TIMEOUT,
      'sharedSubscriptions.redeliveryBackoff.initialMs': 2000,
      'sharedSubscriptions.redeliveryBackoff.jitter': 0
    })
    const member = await silentMember(t.mqttUrl, 'picky', '$share/ordered/ord/#')
    // acknowledges everything but the first delivery of t-0
    const acking = (async () => {
      for (;;) {
        const p = await member.next<IPublishPacket>('publish', 10_000).catch(() => undefined)
        if (p === undefined) return
        if (p.payload.toString() !== 't-0' || p.dup) member.send({ cmd: 'puback', messageId: p.messageId })
      }
    })()
    const pub = await connectClient(t.mqttUrl, { clientId: 'ord-pub' })
    await pub.publishAsync('ord/t', 't-0', { qos: 1 })
    await waitFor(async () => (await groupOf(t as TestBroker, 'ordered'))?.delayed === 1, 't-0 delayed')
    for (const [topic, payload] of [['ord/t', 't-1'], ['ord/u', 'u-0'], ['ord/t', 't-2']]) await pub.publishAsync(topic, payload, { qos: 1 })
    await waitFor(() => member.publishes().length === 2, 'u-0, at once')
    await waitFor(() => member.publishes().length === 5, 't-0 again, then t-1 and t-2', 5000)
    expect(member.publishes().map(p => p.payload.toString())).toEqual(['t-0', 'u-0', 't-0', 't-1', 't-2'])
    const times = member.publishTimes()
    // t-1 and t-2 were held until the retry of t-0 (2 s after its timeout), not sent when published (with u-0)
    expect(times[3] - times[1]).toBeGreaterThanOrEqual(1000)
    member.destroy()
    await acking
    await endAll([pub])
  })
})
