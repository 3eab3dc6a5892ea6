import { afterEach, describe, expect, it } from 'vitest'
import type { IPublishPacket, Packet } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'
import { Rng } from '../fuzz/mutator.js'

const ids = (packets: Packet[], cmd: string): number[] => packets.filter(p => p.cmd === cmd).map(p => p.messageId as number)

/**
 * A reconnecting persistent session's queue is resent while the client's acknowledgements of the same flows are
 * read: the client may answer the messages it already holds as soon as CONNACK arrives, before or while they come
 * again. Once the broker has sent a PUBREL it must not send that PUBLISH again [MQTT-4.3.3-1]: the receiver
 * completes the flow at the PUBREL, and takes a PUBLISH under the id after its PUBCOMP for a new message.
 */
describe('acknowledgements that race the replay of a reconnecting session', () => {
  let t: TestBroker | undefined
  afterEach(async () => { await t?.close() })

  it('no QoS 2 PUBLISH resent after its PUBREL, and the connection is kept', async () => {
    const rng = new Rng(29)
    t = await startTestBroker()
    const pub = await connectClient(t.mqttUrl, { clientId: 'race-pub' })
    let raw: RawClient = await openRaw('tcp', t)
    await raw.connect({ clientId: 'race', clean: false })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'race/#', qos: 2 }] })
    await raw.next('suback')
    let sent = 0
    for (let round = 0; round < 12; round++) {
      const context = `round ${round}`
      const count = 50 + rng.int(250)
      const from = raw.received.length
      await Promise.all(Array.from({ length: count }, async () => await pub.publishAsync('race/a', `m${sent++}`, { qos: rng.chance(0.7) ? 2 : 1 })))
      await waitFor(() => raw.received.slice(from).filter(p => p.cmd === 'publish').length === count, `${count} messages (${context})`)
      const held = raw.received.slice(from).filter((p): p is IPublishPacket => p.cmd === 'publish')
      await raw.disconnect()

      raw = await openRaw('tcp', t)
      await raw.connect({ clientId: 'race', clean: false })
      // every message held is answered at once, while the broker resends them
      for (const p of held) raw.send({ cmd: p.qos === 2 ? 'pubrec' : 'puback', messageId: p.messageId })
      const qos2 = held.filter(p => p.qos === 2).map(p => p.messageId as number)
      await waitFor(() => qos2.every(id => ids(raw.received, 'pubrel').includes(id)), `a PUBREL for each PUBREC (${context})`)
      for (const id of qos2) raw.send({ cmd: 'pubcomp', messageId: id })
      // once this live message is here, whatever the replay sent is here too
      await pub.publishAsync('race/marker', `marker ${round}`, { qos: 1 })
      const marker = await raw.next<IPublishPacket>(p => p.cmd === 'publish' && p.topic === 'race/marker')
      raw.send({ cmd: 'puback', messageId: marker.messageId })

      const late: string[] = []
      const completed = new Set<number>()
      for (const p of raw.received) {
        if (p.cmd === 'pubrel') completed.add(p.messageId as number)
        // the marker is a new message: it may take an id the client completed with its PUBCOMP
        else if (p.cmd === 'publish' && p.topic !== 'race/marker' && completed.has(p.messageId as number)) late.push(`${p.messageId as number} ${p.topic}`)
      }
      expect(late, `PUBLISH resent after its PUBREL (${context})`).toEqual([])
      expect(raw.isClosed, `connection closed (${context})`).toBe(false)
      await waitFor(() => t?.broker.store.stats().queuedMessages === 0, `an empty queue (${context})`)
    }
    await raw.disconnect()
    await endClient(pub)
  }, 60_000)
})
