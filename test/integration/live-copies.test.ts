import type { IPublishPacket, IPubackPacket } from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, testStore, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

type Client = Awaited<ReturnType<typeof connectClient>>

async function writeBatches (t: TestBroker): Promise<number> {
  const text = await (await fetch(`${t.adminUrl}/metrics`)).text()
  const line = text.split('\n').find(l => l.startsWith('culex_store_write_batches_total '))
  if (line === undefined) throw new Error('culex_store_write_batches_total missing from /metrics')
  return Number(line.split(' ')[1])
}

/**
 * A QoS 1 message to a persistent subscriber that is connected goes out before it is written (src/store/live-copies.ts):
 * its publisher's PUBACK waits until the subscriber acknowledged it or it is on disk, whichever comes first.
 */
describe('live copies to a connected persistent subscriber', () => {
  let t: TestBroker | undefined
  const clients: Client[] = []
  const raws: RawClient[] = []
  afterEach(async () => {
    for (const raw of raws.splice(0)) raw.destroy()
    await Promise.all(clients.splice(0).map(async c => await endClient(c, true)))
    await t?.close()
    t = undefined
  })

  const rawSubscriber = async (id: string, filter: string): Promise<RawClient> => {
    const raw = await openRaw('tcp', { mqttUrl: (t as TestBroker).mqttUrl, wsUrl: '' })
    raws.push(raw)
    await raw.connect({ clientId: id, clean: false })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] })
    await raw.next('suback')
    return raw
  }

  it.runIf(testStore() === 'leveldb')('a subscriber that keeps up costs (nearly) no store write: 200 messages, fewer than 10 batches where each took one', async () => {
    t = await startTestBroker()
    const sub = await connectClient(t.mqttUrl, { clientId: 'keeps-up', clean: false })
    clients.push(sub)
    await sub.subscribeAsync('live/fast', { qos: 1 })
    const pub = await connectClient(t.mqttUrl, { clientId: 'fast-pub' })
    clients.push(pub)
    // the session's own records are written by now
    await pub.publishAsync('live/fast', 'warm', { qos: 1 })
    await waitFor(() => sub.received.length === 1, 'the warm-up message')
    const before = await writeBatches(t)
    for (let i = 0; i < 200; i++) await pub.publishAsync('live/fast', `m${i}`, { qos: 1 })
    await waitFor(() => sub.received.length === 201, 'the 200 messages')
    expect(sub.received.slice(1).map(r => r.payload)).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`))
    // each message took a batch (its put) before; now none, but for a copy whose PUBACK a stall of this busy test
    // process delayed past the hold
    expect(await writeBatches(t) - before).toBeLessThan(10)
  })

  it('a copy not acknowledged is written before its publisher\'s PUBACK, and is there after a restart', async () => {
    t = await startTestBroker()
    const sub = await rawSubscriber('holds-it', 'live/held')
    const pub = await connectClient(t.mqttUrl, { clientId: 'held-pub' })
    clients.push(pub)
    const acked = pub.publishAsync('live/held', 'unacknowledged', { qos: 1 })
    const delivered = await sub.next<IPublishPacket>('publish')
    expect(delivered.payload.toString()).toBe('unacknowledged')
    await acked
    sub.destroy()
    t = await t.restart()
    const again = await rawSubscriber('holds-it', 'live/held')
    const resent = await again.next<IPublishPacket>('publish')
    expect({ payload: resent.payload.toString(), dup: resent.dup }).toEqual({ payload: 'unacknowledged', dup: true })
  })

  it('PUBACKs go out in the order the PUBLISHes came, though a later one ends first', async () => {
    t = await startTestBroker()
    const sub = await rawSubscriber('slow-acker', 'order/held')
    const pub = await openRaw('tcp', { mqttUrl: t.mqttUrl, wsUrl: '' })
    raws.push(pub)
    await pub.connect({ clientId: 'order-pub' })
    // the first waits for the subscriber's PUBACK (or for its write), the second has no subscriber and ends at once
    pub.send({ cmd: 'publish', topic: 'order/held', payload: Buffer.from('first'), qos: 1, messageId: 1, retain: false, dup: false })
    pub.send({ cmd: 'publish', topic: 'order/nobody', payload: Buffer.from('second'), qos: 1, messageId: 2, retain: false, dup: false })
    const copy = await sub.next<IPublishPacket>('publish')
    expect(copy.payload.toString()).toBe('first')
    const first = await pub.next<IPubackPacket>('puback')
    const second = await pub.next<IPubackPacket>('puback')
    expect([first.messageId, second.messageId]).toEqual([1, 2])
  })
})
