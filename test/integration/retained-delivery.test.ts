import type { Socket } from 'node:net'
import type { IPublishPacket } from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'

/** Counts the writes the kernel gets for a socket: each _write or _writev of net.Socket is one. */
function countWrites (socket: Socket): () => number {
  let writes = 0
  const s = socket as unknown as { _write: (...a: unknown[]) => void, _writev: (...a: unknown[]) => void }
  const write = s._write
  const writev = s._writev
  s._write = function (...a: unknown[]) { writes++; write.apply(this, a) }
  s._writev = function (...a: unknown[]) { writes++; writev.apply(this, a) }
  return () => writes
}

/**
 * The retained messages a SUBSCRIBE matches leave in a few socket writes, one per store read, not one write and one
 * turn of the event loop each: with 100,000 retained topics the last of 100 matches took 15-18 ms that way.
 */
describe('retained messages sent on SUBSCRIBE', () => {
  let t: TestBroker | undefined
  afterEach(async () => { await t?.close() })

  it('every one of 300 matches arrives, in a handful of socket writes', async () => {
    t = await startTestBroker()
    const pub = await connectClient(t.mqttUrl, { clientId: 'retained-pub' })
    const count = 300
    for (let i = 0; i < count; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async (_, k) => await pub.publishAsync(`batch/${i + k}/v`, `m${i + k}`, { qos: 1, retain: true })))
    }
    await endClient(pub)

    let writes: (() => number) | undefined
    t.broker.aedes.once('client', (client) => { writes = countWrites((client as unknown as { conn: Socket }).conn) })
    const raw = await openRaw('tcp', t)
    await raw.connect({ clientId: 'retained-sub' })
    const before = writes?.() ?? 0
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'batch/+/v', qos: 1 }] })
    await waitFor(() => raw.received.filter(p => p.cmd === 'publish').length === count, `${count} retained messages`)
    const got = raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish')
    expect(new Set(got.map(p => p.topic)).size).toBe(count)
    expect(got.every(p => p.retain)).toBe(true)
    // SUBACK, then reads of 1, 4, 16, 64 and 215 matches: one write each (7 with a margin for the socket)
    expect(writes?.() ?? Infinity).toBeLessThanOrEqual(before + 10)
    raw.destroy()
  })
})
