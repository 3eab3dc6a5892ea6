// The growth benchmark's load: many persistent sessions with queued messages written through the broker, and the
// drain of one of them. Used by bench/growth.mjs, which owns the broker process (restarts, RSS).
import { performance } from 'node:perf_hooks'
import { settle } from './drain.mjs'
import { Client, SeqSet } from './mqtt.mjs'
import { Publisher } from './publisher.mjs'

export const ALL_TOPIC = 'growth/all'
export const PROBE_TOPIC = 'growth/probe'
export const PROBE_ID = 'growth-s0'

/**
 * Connects `sessions` persistent (clean=false) clients, `concurrency` at a time, each subscribing QoS 1 to
 * growth/all (the first, the probe session, also to growth/probe), and disconnects them.
 */
export async function makeSessions (port, sessions, concurrency = 200) {
  let next = 0
  const one = async () => {
    while (next < sessions) {
      const i = next++
      const c = await Client.connect(port, { clientId: `growth-s${i}`, clean: false, timeoutMs: 30000 })
      const subs = [{ topic: ALL_TOPIC, qos: 1 }]
      if (i === 0) subs.push({ topic: PROBE_TOPIC, qos: 1 })
      await c.subscribe(subs, 1, 30000)
      await c.disconnect()
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, sessions) }, one))
}

/** Publishes `count` QoS 1 messages on `topic` with `window` unacknowledged; resolves with the acknowledged count. */
export async function publish (port, topic, count, window, payloadSize = 64) {
  if (count === 0) return 0
  const pc = await Client.connect(port, { clientId: `growth-pub-${topic.replace('/', '-')}` })
  const pub = new Publisher(pc, { index: 0, topic, qos: 1, payloadSize, window })
  pub.start(count)
  await settle({ done: () => pub.ackedCount === count, progress: () => pub.ackedCount, idleMs: 30000, maxMs: 600000 })
  await pc.disconnect()
  return pub.ackedCount
}

/**
 * Reconnects the probe session and counts its distinct messages until `expected` arrived (or nothing moved for
 * idleMs): msgs/s from CONNECT to the last one, as the offline scenario's drain.
 */
export async function drainProbe (port, expected, idleMs = 5000, maxMs = 120000) {
  // one set per topic: the probe's queue is written by two publishers, each numbering its messages from 0
  const seen = { [ALL_TOPIC.length]: new SeqSet(), [PROBE_TOPIC.length]: new SeqSet() }
  let received = 0
  let lastAt = 0
  const t0 = performance.now()
  const c = await Client.connect(port, {
    clientId: PROBE_ID,
    clean: false,
    timeoutMs: 60000,
    init: cl => {
      cl.onPublish = (x, q, id, b, ts, te, ps, pe, now) => {
        if (seen[te - ts].add(b.readUInt32BE(ps + 2))) { received++; lastAt = now }
      }
    }
  })
  const connackMs = performance.now() - t0
  await settle({ done: () => received >= expected, progress: () => received, idleMs, maxMs })
  await c.disconnect()
  return { received, expected, connackMs, drainS: (lastAt - t0) / 1000, drainRate: received / ((lastAt - t0) / 1000) }
}
