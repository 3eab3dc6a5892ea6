import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { retryDelayMs } from '../../src/shared-subscriptions/backoff.js'
import { groupBackoffsField, groupStrategiesField } from '../../src/shared-subscriptions/config-fields.js'
import { Membership } from '../../src/shared-subscriptions/membership.js'
import { admit, afterLoss, deliveredQos, isFull, sweepIntervalMs } from '../../src/shared-subscriptions/policy.js'
import { isShareFilter, parseShare } from '../../src/shared-subscriptions/share-name.js'
import { Picker, rendezvous, type Candidate } from '../../src/shared-subscriptions/strategies.js'

const c = (id: string, inflight = 0, full = false): Candidate => ({ id, inflight, full })
const input = { topic: 't', publisher: 'p' }

describe('share names', () => {
  it('splits $share/<group>/<filter> and refuses bad names', () => {
    expect(parseShare('$share/g/jobs/#')).toEqual({ group: 'g', filter: 'jobs/#', key: 'g/jobs/#' })
    expect(parseShare('$share/g/+')).toEqual({ group: 'g', filter: '+', key: 'g/+' })
    expect(parseShare('$share/g//x')).toEqual({ group: 'g', filter: '/x', key: 'g//x' })
    expect(parseShare('$share/+/a')).toEqual({ problem: 'wildcard in the share name' })
    expect(parseShare('$share/#')).toEqual({ problem: 'no topic filter after the share name' })
    expect(parseShare('$share//a')).toEqual({ problem: 'empty share name' })
    expect(parseShare('$share/g/')).toEqual({ problem: 'empty topic filter' })
    expect(parseShare('$share/g')).toEqual({ problem: 'no topic filter after the share name' })
    expect(isShareFilter('$share')).toBe(false)
    expect(isShareFilter('$sharex/g/a')).toBe(false)
    expect(isShareFilter('jobs/$share/g/a')).toBe(false)
  })
})

describe('strategies', () => {
  it('round-robin walks the members in order and skips full ones', () => {
    const p = new Picker('round-robin')
    const all = [c('a'), c('b'), c('c')]
    expect([1, 2, 3, 4, 5, 6].map(() => p.pick(all, input)?.id)).toEqual(['a', 'b', 'c', 'a', 'b', 'c'])
    expect(p.pick([c('a'), c('b', 0, true), c('c')], input)?.id).toBe('a')
    expect(p.pick([c('a'), c('b', 0, true), c('c')], input)?.id).toBe('c')
    expect(p.pick([c('a', 0, true), c('b', 0, true)], input)).toBeUndefined()
    expect(p.pick([], input)).toBeUndefined()
  })

  it('least-inflight picks the fewest unacknowledged, ties in turn', () => {
    const p = new Picker('least-inflight')
    expect(p.pick([c('a', 3), c('b', 1), c('c', 2)], input)?.id).toBe('b')
    expect(p.pick([c('a', 3), c('b', 1, true), c('c', 2)], input)?.id).toBe('c')
    const ties = [c('a'), c('b'), c('c')]
    expect([1, 2, 3].map(() => p.pick(ties, input)?.id).sort()).toEqual(['a', 'b', 'c'])
  })

  it('random picks with the given source among members that are not full', () => {
    expect(new Picker('random', () => 0.99).pick([c('a'), c('b'), c('c')], input)?.id).toBe('c')
    expect(new Picker('random', () => 0.99).pick([c('a'), c('b'), c('c', 0, true)], input)?.id).toBe('b')
  })

  it('sticky keeps its member while it is there, waits while it is full, and moves when it leaves', () => {
    const p = new Picker('sticky', () => 0)
    expect(p.pick([c('a'), c('b')], input)?.id).toBe('a')
    expect(p.pick([c('b'), c('a')], input)?.id).toBe('a')
    expect(p.pick([c('b'), c('a', 5, true)], input)).toBeUndefined()
    expect(p.pick([c('b'), c('c')], input)?.id).toBe('b')
    expect(p.pick([c('a'), c('b'), c('c')], input)?.id).toBe('b')
  })

  it('hash-topic and hash-clientid map a key to one member, waiting while it is full', () => {
    const members = [c('w1'), c('w2'), c('w3'), c('w4')]
    const topic = new Picker('hash-topic')
    const byTopic = new Map<string, string>()
    for (let i = 0; i < 200; i++) byTopic.set(`o/${i}`, topic.pick(members, { topic: `o/${i}`, publisher: undefined })?.id ?? '')
    for (let i = 0; i < 200; i++) expect(topic.pick([...members].reverse(), { topic: `o/${i}`, publisher: 'x' })?.id).toBe(byTopic.get(`o/${i}`))
    expect(new Set(byTopic.values()).size).toBe(4)
    const target = byTopic.get('o/1') as string
    expect(topic.pick(members.map(m => m.id === target ? c(m.id, 9, true) : m), { topic: 'o/1', publisher: undefined })).toBeUndefined()
    const client = new Picker('hash-clientid')
    const first = client.pick(members, { topic: 'a', publisher: 'pub-1' })?.id
    expect(client.pick(members, { topic: 'b', publisher: 'pub-1' })?.id).toBe(first)
  })

  it('rendezvous moves only the keys of a member that leaves', () => {
    const four = ['a', 'b', 'c', 'd'].map(id => ({ id }))
    const three = four.filter(m => m.id !== 'c')
    let moved = 0
    for (let i = 0; i < 1000; i++) {
      const before = rendezvous(four, `k${i}`).id
      const after = rendezvous(three, `k${i}`).id
      if (before !== 'c') expect(after).toBe(before)
      else moved++
    }
    expect(moved).toBeGreaterThan(150)
    expect(moved).toBeLessThan(350)
  })
})

describe('redelivery and queue policy', () => {
  const limits = { maxQueuedMessages: 3, maxQueuedBytes: 100, overflowPolicy: 'dropOldest' as const }

  it('admits within limits and evicts the oldest waiting messages, or refuses with dropNewest', () => {
    expect(admit(limits, 2, 10, 10, () => [5, 5])).toEqual({ accept: true, evict: 0 })
    expect(admit(limits, 3, 30, 10, () => [10, 10, 10])).toEqual({ accept: true, evict: 1 })
    expect(admit(limits, 2, 90, 50, () => [45, 45])).toEqual({ accept: true, evict: 1 })
    expect(admit(limits, 2, 90, 200, () => [45, 45])).toEqual({ accept: false })
    expect(admit({ ...limits, overflowPolicy: 'dropNewest' }, 3, 30, 10, () => [10, 10, 10])).toEqual({ accept: false })
    expect(admit({ maxQueuedMessages: 0, maxQueuedBytes: 0, overflowPolicy: 'dropNewest' }, 1e6, 1e9, 10, () => [])).toEqual({ accept: true, evict: 0 })
  })

  it('dead-letters after maxDeliveries attempts, never with 0', () => {
    expect(afterLoss(1, 3)).toBe('redeliver')
    expect(afterLoss(2, 3)).toBe('redeliver')
    expect(afterLoss(3, 3)).toBe('dead-letter')
    expect(afterLoss(1000, 0)).toBe('redeliver')
  })

  it('waits initialMs × multiplier^(attempt−1) after a failed attempt, capped at maxMs, varied by ± jitter', () => {
    const b = { initialMs: 100, multiplier: 2, maxMs: 1000, jitter: 0 }
    expect([1, 2, 3, 4, 5, 6].map(a => retryDelayMs(b, a, Math.random))).toEqual([100, 200, 400, 800, 1000, 1000])
    expect(retryDelayMs({ ...b, multiplier: 1.5 }, 3, Math.random)).toBe(225)
    expect(retryDelayMs({ ...b, initialMs: 0 }, 3, Math.random)).toBe(0)
    const j = { ...b, jitter: 0.2 }
    expect(retryDelayMs(j, 2, () => 0)).toBe(160)
    expect(retryDelayMs(j, 2, () => 0.5)).toBe(200)
    expect(retryDelayMs(j, 2, () => 0.999999)).toBe(240)
    expect(retryDelayMs({ ...b, jitter: 1 }, 1, () => 0)).toBe(0)
  })

  it('delivers at the lower QoS, counts only QoS 1/2 against the cap, sweeps within a quarter of the timeout', () => {
    expect(deliveredQos(2, 1)).toBe(1)
    expect(deliveredQos(1, 2)).toBe(1)
    expect(deliveredQos(1, 0)).toBe(0)
    expect(isFull(10, 10, 1)).toBe(true)
    expect(isFull(10, 10, 0)).toBe(false)
    expect(isFull(10, 0, 1)).toBe(false)
    expect(sweepIntervalMs(30_000)).toBe(1000)
    expect(sweepIntervalMs(400)).toBe(100)
    expect(sweepIntervalMs(10)).toBe(50)
  })
})

describe('membership', () => {
  it('keeps persistent members offline, lets clean ones leave, and follows a takeover', () => {
    const m = new Membership<string>()
    m.join('p', { handle: 'conn-1', token: 'f1', qos: 1, persistent: true, ready: false })
    m.join('c', { handle: 'conn-2', token: 'f2', qos: 0, persistent: false, ready: true })
    expect(m.online().map(x => x.clientId)).toEqual(['c'])
    expect(m.durable).toBe(true)
    expect(m.ready('conn-1')).toBe(true)
    expect(m.online().map(x => x.clientId)).toEqual(['p', 'c'])
    // a takeover: the new connection's subscription replaces the old one, which no longer identifies the member
    m.join('p', { handle: 'conn-3', token: 'f3', qos: 2, persistent: true, ready: false })
    expect(m.byToken('f1')).toBeUndefined()
    expect(m.disconnected(m.byToken('f3') as NonNullable<ReturnType<typeof m.byToken>>)).toBe(false)
    expect(m.get('p')).toMatchObject({ handle: undefined, ready: false, qos: 2 })
    expect(m.disconnected(m.byToken('f2') as NonNullable<ReturnType<typeof m.byToken>>)).toBe(true)
    expect(m.size).toBe(1)
    m.restore('q', 1)
    expect(m.online()).toEqual([])
    expect(m.leave('p')).toBe(true)
    expect([...m.all()].map(x => x.clientId)).toEqual(['q'])
  })
})

describe('configuration', () => {
  it('reads group strategies as a mapping or as name=strategy pairs, and names the problem', async () => {
    const f = groupStrategiesField('doc')
    expect(f.parse({ orders: 'hash-topic' })).toEqual({ ok: true, value: { orders: 'hash-topic' } })
    expect(f.parse('orders=hash-topic, billing=sticky')).toEqual({ ok: true, value: { orders: 'hash-topic', billing: 'sticky' } })
    expect(f.parse('')).toEqual({ ok: true, value: {} })
    expect(f.parse({ orders: 'fastest' })).toMatchObject({ ok: false, problem: expect.stringContaining('strategy of orders must be one of round-robin') })
    expect(f.parse({ 'a/b': 'random' })).toMatchObject({ ok: false })
    expect(f.parse('orders')).toMatchObject({ ok: false })
    expect(f.parse(['x'])).toMatchObject({ ok: false })
    const { config } = await loadConfig({ env: { CULEX_SHARED_SUBSCRIPTIONS_GROUP_STRATEGIES: 'a=random', CULEX_SHARED_SUBSCRIPTIONS_STRATEGY: 'least-inflight' } })
    expect(config.sharedSubscriptions).toMatchObject({ strategy: 'least-inflight', groupStrategies: { a: 'random' }, ackTimeoutMs: 30_000, maxDeliveries: 5 })
    await expect(loadConfig({ env: { CULEX_SHARED_SUBSCRIPTIONS_STRATEGY: 'fastest' } })).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID' })
  })

  it('reads the redelivery backoff and its per-group overrides from the environment and as a mapping', async () => {
    const defaults = await loadConfig({})
    expect(defaults.config.sharedSubscriptions.redeliveryBackoff).toEqual({ initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0.2 })
    const { config } = await loadConfig({
      env: {
        CULEX_SHARED_SUBSCRIPTIONS_REDELIVERY_BACKOFF_INITIAL_MS: '250',
        CULEX_SHARED_SUBSCRIPTIONS_REDELIVERY_BACKOFF_MULTIPLIER: '1.5',
        CULEX_SHARED_SUBSCRIPTIONS_REDELIVERY_BACKOFF_MAX_MS: '5000',
        CULEX_SHARED_SUBSCRIPTIONS_REDELIVERY_BACKOFF_JITTER: '0',
        CULEX_SHARED_SUBSCRIPTIONS_GROUP_REDELIVERY_BACKOFF: 'orders=500::10000:0.1,billing=100:3'
      }
    })
    expect(config.sharedSubscriptions.redeliveryBackoff).toEqual({ initialMs: 250, multiplier: 1.5, maxMs: 5000, jitter: 0 })
    expect(config.sharedSubscriptions.groupRedeliveryBackoff).toEqual({ orders: { initialMs: 500, maxMs: 10_000, jitter: 0.1 }, billing: { initialMs: 100, multiplier: 3 } })
    await expect(loadConfig({ env: { CULEX_SHARED_SUBSCRIPTIONS_REDELIVERY_BACKOFF_JITTER: '2' } })).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID' })
    const f = groupBackoffsField('doc')
    expect(f.parse({ orders: { initialMs: 500, jitter: 0 } })).toEqual({ ok: true, value: { orders: { initialMs: 500, jitter: 0 } } })
    expect(f.parse({ orders: { initialMS: 500 } })).toMatchObject({ ok: false, problem: expect.stringContaining('unknown key initialMS') })
    expect(f.parse({ orders: { multiplier: 0.5 } })).toMatchObject({ ok: false, problem: expect.stringContaining('multiplier must be between 1 and 100') })
    expect(f.parse('orders=1:2:3:0.1:9')).toMatchObject({ ok: false })
    expect(f.parse({ 'a/b': {} })).toMatchObject({ ok: false })
  })
})
