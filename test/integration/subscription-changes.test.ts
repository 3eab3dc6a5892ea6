import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor, type TestClient } from '../helpers/clients.js'

const TOPICS = ['c/a', 'c/b', 'c/a/x']
const FILTERS = ['c/a', 'c/+', 'c/#', 'c/a/+', '+/b']

/** Whether an MQTT filter matches a topic (the cases above: no `$` topics, `#` only last). */
function matches (filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false
  }
  return f.length === t.length
}

/**
 * Culex keeps what each topic matched until a subscription changes (protocol/match-cache.ts): a message published to
 * a topic that was published to before must reach exactly the subscriptions there are when it is published.
 */
describe('live subscriptions changing between publishes to the same topics', () => {
  let t: TestBroker
  beforeEach(async () => { t = await startTestBroker() })
  afterEach(async () => { await t.close() })

  it('each message reaches exactly the subscribers whose filters match it then: after SUBSCRIBE, UNSUBSCRIBE and reconnects (seeded)', async () => {
    let seed = 16
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
    const names = ['s0', 's1', 's2']
    const subs = new Map<string, TestClient>()
    const filters = new Map<string, Set<string>>()
    const connect = async (name: string): Promise<void> => {
      const c = await connectClient(t.mqttUrl, { clientId: name })
      // every subscriber's own fence: once it has arrived, so has anything written to that subscriber before it
      await c.subscribeAsync(`fence/${name}`, { qos: 1 })
      subs.set(name, c)
      filters.set(name, new Set())
    }
    for (const name of names) await connect(name)
    const pub = await connectClient(t.mqttUrl, { clientId: 'pub' })

    for (let step = 0; step < 120; step++) {
      const name = pick(names)
      const sub = subs.get(name) as TestClient
      const own = filters.get(name) as Set<string>
      const action = random()
      if (action < 0.4) {
        const filter = pick(FILTERS)
        await sub.subscribeAsync(filter, { qos: 1 })
        own.add(filter)
      } else if (action < 0.75 && own.size > 0) {
        const filter = pick([...own])
        await sub.unsubscribeAsync(filter)
        own.delete(filter)
      } else if (action < 0.85) {
        await endClient(sub)
        await connect(name)
      }
      // the same topics again and again, so that their earlier matches would be kept
      for (let k = 0; k < 3; k++) {
        const topic = pick(TOPICS)
        const payload = `${step}.${k}`
        await pub.publishAsync(topic, payload, { qos: 1 })
        for (const n of names) await pub.publishAsync(`fence/${n}`, payload, { qos: 1 })
        for (const n of names) {
          const c = subs.get(n) as TestClient
          await waitFor(() => c.received.some(m => m.topic === `fence/${n}` && m.payload === payload), `the fence ${payload} at ${n}`)
          const got = c.received.filter(m => m.topic === topic && m.payload === payload).length
          const expected = [...(filters.get(n) as Set<string>)].some(f => matches(f, topic)) ? 1 : 0
          expect(got, `${topic} ${payload} at ${n} subscribed to ${[...(filters.get(n) as Set<string>)].join(', ')}`).toBe(expected)
        }
      }
    }
    await Promise.all([pub, ...subs.values()].map(async c => await endClient(c)))
  }, 60_000)
})
