import { describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { endClient, waitFor, type TestClient } from '../helpers/clients.js'
import { prng, useCluster } from './support.js'

/** Publishes numbered QoS 1 messages, up to 8 unacknowledged, until `stop()`; `acked` gets each PUBACK'd number. */
async function publishUntil (pub: TestClient, topic: string, stop: () => boolean, acked: number[]): Promise<void> {
  const window = new Set<Promise<void>>()
  for (let n = 0; !stop(); n++) {
    const sent: Promise<void> = new Promise<void>(resolve => {
      pub.publish(topic, String(n), { qos: 1 }, err => {
        if (err == null) acked.push(n)
        resolve()
      })
    }).finally(() => window.delete(sent))
    window.add(sent)
    if (window.size >= 8) await Promise.race(window)
  }
  await Promise.all(window)
}

/**
 * Drops the node's pub/sub connection to Redis: the announcements of other nodes' filter changes made until it is
 * back (ioredis reconnects within about 50 ms, then the node reads every node's filters again) never reach it.
 */
async function dropSubscriber (admin: Redis, nodeId: string): Promise<void> {
  const list = await admin.client('LIST') as string
  const id = list.split('\n').find(line => line.includes(` name=culex:${nodeId}:subscriber `))
  if (id !== undefined) await admin.client('KILL', 'ID', /id=(\d+)/.exec(id)?.[1] ?? '')
}

/**
 * A persistent session resumed on a node gets, on that connection, every message acknowledged to a publisher on
 * another node: also those published before the publisher's node has read the resumed session's topic filter (one
 * announcement through Redis after the session's subscriptions are restored; here held back longer by a lost pub/sub
 * connection). Those were queued for the session in Redis but reached it only at its next connection
 * (docs/cluster.md, "How messages travel": the holder of a session).
 */
describe('a persistent session resumed on another node', () => {
  const { node, client, redis } = useCluster()

  it('gets every acknowledged message while connected, without reconnecting, over many resumes under load (seeded)', async () => {
    const random = prng(Number(process.env.CULEX_RESUME_SEED ?? 15))
    const b = await node('b')
    const c = await node('c')
    const first = await client(b.mqttUrl, { clientId: 'roamer', clean: false, reconnectPeriod: 0 })
    await first.subscribeAsync('resume/#', { qos: 1 })
    await endClient(first)
    const got = new Set<number>()
    const pub = await client(c.mqttUrl, { clientId: 'resume-pub' })
    const acked: number[] = []
    let stopped = false
    const publishing = publishUntil(pub, 'resume/load', () => stopped, acked)
    const late: string[] = []
    const admin = new Redis(redis().url)
    try {
      for (let round = 0; round < 25; round++) {
        // the session resumes on b, whose filter for it c does not read until its pub/sub connection is back
        await dropSubscriber(admin, 'c')
        const sub = await client(b.mqttUrl, { clientId: 'roamer', clean: false, reconnectPeriod: 0 })
        sub.on('message', (_topic, payload) => got.add(Number(payload.toString())))
        expect(sub.sessionPresent).toBe(true)
        const mark = acked.length + 20 + Math.floor(random() * 60)
        await waitFor(() => acked.length >= mark, `${mark} acknowledged (round ${round})`)
        const due = acked.slice(0, mark)
        await waitFor(() => due.every(n => got.has(n)), `every acknowledged message on the connection (round ${round})`, 3000).catch(() => {
          late.push(`round ${round}: ${due.filter(n => !got.has(n)).join(',')}`)
        })
        await endClient(sub)
      }
    } finally {
      stopped = true
      await publishing
      admin.disconnect()
    }
    expect(late).toEqual([])
  }, 120_000)
})
