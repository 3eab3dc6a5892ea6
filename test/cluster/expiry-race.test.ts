import { describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { sleep, waitFor, type TestClient } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'
import { prng, STEADY, useCluster, waitForRoute } from './support.js'

const { node, client, redis } = useCluster()

const EXPIRY_MS = 1000
const FILTERS = 300
/**
 * How long before its expiry the client resumes its session, at most: the connect's expiry check, made before that
 * moment, finds it alive, and its registration follows a few milliseconds later, after the expiry on the other node
 * read the record. Measured without the claim, 16 rounds up to 12 ms before: 9 resumed with session present 1 and
 * nothing left in Redis, one whose record was gone while it was connected; 16 rounds up to 60 ms before: the only
 * failure 3 ms before, none from 9 ms on.
 */
const SPREAD_MS = 12
const ROUNDS = Number(process.env.CULEX_EXPIRY_RACE_ROUNDS ?? 12)
const SEED = Number(process.env.CULEX_EXPIRY_RACE_SEED ?? 7)

describe('a session expiring on one node while its client resumes it on another', () => {
  it(`is either over (session present 0) or resumed whole, subscriptions and queue, and kept while connected (seed ${SEED}, ${ROUNDS} rounds)`, async () => {
    // every node expires a session 1 s after its client left: MQTT 3.1.1 by sessions.expiryMs, MQTT 5 by its interval
    const settings = { 'sessions.expiryMs': EXPIRY_MS }
    const a = await node('a', settings)
    const b = await node('b', settings)
    await waitFor(() => a.broker.cluster?.nodes().length === 2 && b.broker.cluster?.nodes().length === 2, 'both nodes registered')
    const db = new Redis(redis().url)
    const publisher = await client(a.mqttUrl, { clientId: 'race-publisher' })
    const random = prng(SEED)
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const id = `expiring-${round}`
        const v5 = round % 2 === 1
        const opts = { clientId: id, clean: false, ...(v5 ? { properties: { sessionExpiryInterval: 1 } } : {}) }
        const filters = Array.from({ length: FILTERS }, (_, i) => `race/${round}/${i}`)
        const first = await client(a.mqttUrl, opts, v5)
        await first.subscribeAsync(filters, { qos: 1 })
        await waitForRoute(b, a, filters[0])
        // node a has the disconnect, so its expiry timer is set for the session's expiry
        await endAndWait(first)
        await waitFor(async () => (await record(db, id))?.disconnectedAt !== undefined, `round ${round}: the disconnect recorded`)
        await publisher.publishAsync(filters[0], `queued ${round}`, { qos: 1 })
        const at = ((await record(db, id))?.disconnectedAt as number) + EXPIRY_MS + 1
        const before = Math.floor(random() * SPREAD_MS)
        await sleep(Math.max(0, at - before - Date.now()))
        const resumed = await client(b.mqttUrl, opts, v5)
        // past the expiry on node a: what the client was told must still hold
        await sleep(Math.max(0, at + 300 - Date.now()))
        const what = `round ${round} (MQTT ${v5 ? '5' : '3.1.1'}, ${before} ms before the expiry, session present ${resumed.sessionPresent ? 1 : 0})`
        const subscriptions = await db.hlen(`culex:subs:${id}`)
        const now = await record(db, id)
        expect(now, `${what}: the session record`).toBeDefined()
        expect(now?.disconnectedAt, `${what}: the session record says connected`).toBeUndefined()
        if (resumed.sessionPresent) {
          expect(subscriptions, `${what}: the resumed session's subscriptions in Redis`).toBe(FILTERS)
          await waitFor(() => resumed.received.length > 0, `${what}: the message queued for the resumed session`, 2000)
          expect(resumed.received.map(m => m.payload), what).toEqual([`queued ${round}`])
        } else {
          expect(subscriptions, `${what}: the new session's subscriptions`).toBe(0)
          expect(resumed.received, `${what}: the new session's messages`).toEqual([])
        }
        await endAndWait(resumed)
      }
    } finally {
      db.disconnect()
    }
  }, 120_000)
})

describe('a resume that ends before its client is registered', () => {
  it(`leaves the session disconnected, so that it still expires (the claim answered after the close; seed ${SEED}, 6 rounds)`, async () => {
    const a = await node('a', { 'sessions.expiryMs': EXPIRY_MS, ...STEADY })
    const db = new Redis(redis().url)
    const random = prng(SEED)
    try {
      for (let round = 0; round < 6; round++) {
        const id = `given-up-${round}`
        const first = await client(a.mqttUrl, { clientId: id, clean: false })
        await first.subscribeAsync(`given-up/${round}/#`, { qos: 1 })
        await endAndWait(first)
        await waitFor(async () => (await record(db, id))?.disconnectedAt !== undefined, `round ${round}: the disconnect recorded`)
        // Redis holds every write a while: the CONNECT's claim waits, and its connection closes meanwhile
        await db.call('CLIENT', 'PAUSE', '2000', 'WRITE')
        const raw = await openRaw('tcp', a)
        raw.send({ cmd: 'connect', clientId: id, clean: false, keepalive: 0, protocolId: 'MQTT', protocolVersion: 4 })
        // the store's connection (the one without a name) waits with a script: the claim
        await waitFor(async () => String(await db.call('CLIENT', 'LIST')).split('\n').some(line => / name= .* flags=\S*b .* cmd=evalsha /.test(line)), `round ${round}: the claim held by the pause`)
        raw.destroy()
        await raw.closed
        // the broker sees the close before or after the claim's answer
        await sleep(Math.floor(random() * 30))
        await db.call('CLIENT', 'UNPAUSE')
        await waitFor(async () => (await record(db, id))?.disconnectedAt !== undefined, `round ${round}: the session disconnected again`)
        // and it expires, as any session its client left
        await waitFor(async () => await record(db, id) === undefined && await db.hlen(`culex:subs:${id}`) === 0, `round ${round}: the session expired`)
      }
    } finally {
      db.disconnect()
    }
  }, 60_000)
})

async function record (db: Redis, id: string): Promise<{ disconnectedAt?: number } | undefined> {
  const raw = await db.hget('culex:sessions', id)
  return raw === null ? undefined : JSON.parse(raw) as { disconnectedAt?: number }
}

async function endAndWait (c: TestClient): Promise<void> {
  await new Promise<void>(resolve => { c.end(false, {}, () => { resolve() }) })
}
