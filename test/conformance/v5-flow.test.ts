import { describe, expect, it } from 'vitest'
import type { IConnackPacket, IDisconnectPacket, IPublishPacket } from 'mqtt-packet'
import {
  brokerStillServes, CLOSE_MS, fence, messagesOn, rawClient, rawV5, subscribe, transports, uid, useBroker, v5Client, waitFor, waitForMessages,
  type RawClient, type Transport
} from './support.js'

// MQTT 5.0 §3.3.4 and §4.9 flow control (Receive Maximum both ways), §4.3 and §4.4 a negative acknowledgement,
// §4.8.2 a shared subscription's refused message. The broker reads at most SERVER_RECEIVE_MAXIMUM QoS 2 PUBLISHes
// awaiting PUBREL from one client (mqtt.maxInflightInboundMessages) and retries a refused shared message at once.
const SERVER_RECEIVE_MAXIMUM = 3
const tb = useBroker({ 'mqtt.maxInflightInboundMessages': SERVER_RECEIVE_MAXIMUM, 'sharedSubscriptions.redeliveryBackoff.initialMs': 0 })

const publishes = (raw: RawClient): IPublishPacket[] => raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish')

/** A ping answered: every packet the broker had to send before it has arrived. */
async function settled (raw: RawClient): Promise<void> {
  raw.send({ cmd: 'pingreq' })
  await raw.next('pingresp')
}

describe.each(transports)('MQTT 5 flow control and negative acknowledgements over %s', (transport: Transport) => {
  const subscriber = async (filter: string, opts: { clientId?: string, clean?: boolean, receiveMaximum?: number } = {}): Promise<RawClient> => {
    const raw = await rawV5(tb(), transport, {
      clientId: opts.clientId ?? uid('sub'),
      clean: opts.clean ?? true,
      properties: { ...(opts.receiveMaximum === undefined ? {} : { receiveMaximum: opts.receiveMaximum }), ...(opts.clean === false ? { sessionExpiryInterval: 600 } : {}) }
    })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 2, nl: false, rap: false, rh: 0 }] })
    await raw.next('suback')
    return raw
  }

  it('[MQTT-3.3.4-9][MQTT-4.9.0-2] never more unacknowledged QoS 1/2 PUBLISHes than the client\'s Receive Maximum; each acknowledgement lets one more through; QoS 0 and other packets are not held [MQTT-4.9.0-3][MQTT-3.3.4-10]', async () => {
    const topic = `${uid('rm')}/t`
    const sub = await subscriber(topic, { receiveMaximum: 2 })
    const pub = await v5Client(tb(), transport)
    for (let i = 0; i < 5; i++) await pub.publishAsync(topic, `m${i}`, { qos: (1 + (i % 2)) as 1 | 2 })
    await pub.publishAsync(topic, 'qos0', { qos: 0 })
    await waitFor(() => publishes(sub).some(p => p.qos === 0), 'the QoS 0 message')
    await settled(sub)
    expect(publishes(sub).filter(p => p.qos > 0).map(p => p.payload.toString())).toEqual(['m0', 'm1'])
    for (let done = 0; done < 5; done++) {
      const p = publishes(sub).filter(x => x.qos > 0)[done]
      if (p.qos === 1) {
        sub.send({ cmd: 'puback', messageId: p.messageId })
      } else {
        sub.send({ cmd: 'pubrec', messageId: p.messageId })
        await sub.next(x => x.cmd === 'pubrel' && x.messageId === p.messageId)
        await settled(sub)
        // a QoS 2 PUBLISH counts until its PUBCOMP
        expect(publishes(sub).filter(x => x.qos > 0)).toHaveLength(Math.min(5, done + 2))
        sub.send({ cmd: 'pubcomp', messageId: p.messageId })
      }
      await waitFor(() => publishes(sub).filter(x => x.qos > 0).length >= Math.min(5, done + 3), `after ${done + 1} acknowledgements`)
      await settled(sub)
      expect(publishes(sub).filter(x => x.qos > 0)).toHaveLength(Math.min(5, done + 3))
    }
    expect(publishes(sub).filter(p => p.qos > 0).map(p => p.payload.toString())).toEqual(['m0', 'm1', 'm2', 'm3', 'm4'])
  })

  it('[§3.1.2.11.3] a Receive Maximum of 0 in CONNECT is a protocol error: CONNACK 0x82, closed', async () => {
    const raw = await rawClient(tb(), transport, { version: 5 })
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uid('rm0'), clean: true, keepalive: 0, properties: { receiveMaximum: 0 } })
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.map(p => [p.cmd, (p as IConnackPacket).reasonCode])).toEqual([['connack', 0x82]])
  })

  it('[MQTT-3.3.4-7][§4.9] a client over the server\'s Receive Maximum (QoS 2 PUBLISHes awaiting PUBREL): DISCONNECT 0x93, closed', async () => {
    const topic = `${uid('over')}/t`
    const raw = await rawV5(tb(), transport, { clientId: uid('greedy') })
    expect(raw.received.find((p): p is IConnackPacket => p.cmd === 'connack')?.properties?.receiveMaximum).toBe(SERVER_RECEIVE_MAXIMUM)
    for (let id = 1; id <= SERVER_RECEIVE_MAXIMUM + 1; id++) raw.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 2, messageId: id, retain: false, dup: false })
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.filter(p => p.cmd === 'disconnect').map(p => (p as IDisconnectPacket).reasonCode)).toEqual([0x93])
    await brokerStillServes(tb(), transport)
  })

  it('[MQTT-4.4.0-2] a PUBACK with a reason code ≥ 0x80 ends the flow: the message is not sent again, not even to the resumed session', async () => {
    const topic = `${uid('nack')}/t`
    const clientId = uid('refuser')
    const sub = await subscriber(topic, { clientId, clean: false })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'refused', { qos: 1 })
    const p = await sub.next<IPublishPacket>('publish')
    sub.send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0x80 })
    await settled(sub)
    sub.destroy()
    const again = await rawV5(tb(), transport, { clientId, clean: false, properties: { sessionExpiryInterval: 600 } })
    await pub.publishAsync(topic, 'next', { qos: 1 })
    const next = await again.next<IPublishPacket>('publish')
    expect([next.payload.toString(), next.dup]).toEqual(['next', false])
    await settled(again)
    expect(publishes(again).map(x => x.payload.toString())).toEqual(['next'])
  })

  it('[MQTT-4.3.3-4] a PUBREC with a reason code ≥ 0x80 ends the QoS 2 flow: no PUBREL follows, the id is free for the next message', async () => {
    const topic = `${uid('nrec')}/t`
    const sub = await subscriber(topic, { receiveMaximum: 1 })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'refused', { qos: 2 })
    await pub.publishAsync(topic, 'next', { qos: 2 })
    const p = await sub.next<IPublishPacket>('publish')
    sub.send({ cmd: 'pubrec', messageId: p.messageId, reasonCode: 0x83 })
    // with a Receive Maximum of 1 the next PUBLISH comes only once the refused one's flow has ended
    const next = await sub.next<IPublishPacket>('publish')
    await settled(sub)
    expect([p.payload.toString(), next.payload.toString()]).toEqual(['refused', 'next'])
    expect(sub.received.filter(x => x.cmd === 'pubrel')).toEqual([])
  })

  it('[MQTT-4.8.2-6] (deviation, docs/conformance.md) a shared message one member refuses goes to another member; with sharedSubscriptions.redispatchRejected false it would be dead-lettered at once', async () => {
    const base = uid('share')
    const a = await subscriber(`$share/g/${base}/#`)
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(`${base}/job`, 'job', { qos: 1 })
    const p = await a.next<IPublishPacket>('publish')
    const b = await v5Client(tb(), transport)
    await subscribe(b, { [`$share/g/${base}/#`]: 1 })
    a.send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0x97 })
    const [m] = await waitForMessages(b, `${base}/job`)
    expect(m.payload).toBe('job')
    await subscribe(b, { [`${base}/fence`]: 1 })
    await fence(pub, b, `${base}/fence`)
    expect(messagesOn(b, `${base}/job`)).toHaveLength(1)
  })
})
