import { describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { sleep, waitFor } from '../helpers/clients.js'
import { prng, useCluster, waitForRoute } from './support.js'

const { node, client, redis } = useCluster()

const EXPIRY_MS = 1000
const FILTERS = Number(process.env.CULEX_RACE_FILTERS ?? 300)
const ROUNDS = Number(process.env.CULEX_RACE_ROUNDS ?? 12)

describe('a session expiring on one node while its client resumes it on another', () => {
  it('is either over (session present 0) or resumed whole (its subscriptions and queue), never half (seeded)', async () => {
    const settings = { 'sessions.expiryMs': EXPIRY_MS }
    const a = await node('a', settings)
    const b = await node('b', settings)
    await waitFor(() => a.broker.cluster?.nodes().length === 2 && b.broker.cluster?.nodes().length === 2, 'both nodes registered')
    const db = new Redis(redis().url)
    const publisher = await client(a.mqttUrl, { clientId: 'race-publisher' })
    const random = prng(Number(process.env.CULEX_RACE_SEED ?? 7))
    const outcomes: string[] = []
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const id = `expiring-${round}`
        const v5 = round % 2 === 1
        const filters = Array.from({ length: FILTERS }, (_, i) => `race/${round}/${i}`)
        const first = await client(a.mqttUrl, { clientId: id, clean: false, ...(v5 ? { properties: { sessionExpiryInterval: 1 } } : {}) }, v5)
        await first.subscribeAsync(filters, { qos: 1 })
        await waitForRoute(b, a, filters[0])
        await endAndWait(first)
        await waitFor(async () => await disconnectedAt(db, id) !== undefined, `round ${round}: the disconnect recorded`)
        await publisher.publishAsync(filters[0], `queued ${round}`, { qos: 1 })
        const at = (await disconnectedAt(db, id) as number) + EXPIRY_MS + 1
        const offset = Math.floor(random() * 60)
        await sleep(Math.max(0, at - offset - Date.now()))
        const resumed = await client(b.mqttUrl, { clientId: id, clean: false, ...(v5 ? { properties: { sessionExpiryInterval: 1 } } : {}) }, v5)
        // the expiry runs on node a at `at`: once it has run, what the client got must still hold
        await sleep(Math.max(0, at + 300 - Date.now()))
        const subs = await db.hlen(`culex:subs:${id}`)
        const record = await db.hget('culex:sessions', id)
        outcomes.push(`${round}:${offset}:${resumed.sessionPresent ? 1 : 0}:${subs}:${record === null ? 'none' : (JSON.parse(record).disconnectedAt === undefined ? 'up' : 'down')}:${resumed.received.length}`)
        if (resumed.sessionPresent) {
          await waitFor(() => resumed.received.length > 0, `round ${round} (${offset} ms before expiry): the queued message of a resumed session`, 2000)
          expect(resumed.received.map(m => m.payload), `round ${round}`).toEqual([`queued ${round}`])
          expect(subs, `round ${round} (${offset} ms before expiry): the resumed session's subscriptions in Redis`).toBe(FILTERS)
        } else {
          expect(subs, `round ${round}: a new session`).toBe(0)
        }
        expect(record === null ? undefined : JSON.parse(record).disconnectedAt, `round ${round}: the session record while its client is connected`).toBeUndefined()
        await endAndWait(resumed)
      }
    } finally {
      console.log(outcomes.join(' '))
      db.disconnect()
    }
  }, 120_000)
})

async function disconnectedAt (db: Redis, id: string): Promise<number | undefined> {
  const raw = await db.hget('culex:sessions', id)
  return raw === null ? undefined : (JSON.parse(raw) as { disconnectedAt?: number }).disconnectedAt
}

async function endAndWait (c: { end: (force: boolean, opts: object, cb: () => void) => unknown }): Promise<void> {
  await new Promise<void>(resolve => { c.end(false, {}, resolve) })
}
