import { describe, expect, it } from 'vitest'
import type { IPublishPacket, IPubrelPacket } from 'mqtt-packet'
import { mqttClient, transports, uid, useBroker, waitFor, type Transport } from '../conformance/support.js'
import {
  RETRY_MS, expectQuiet, expectResentUntilPuback, publishesWith, resendLogs, resentPublish, retransmissions, roundTrip, subscribedRaw
} from './support.js'

// mqtt.retryIntervalMs on one connection: what a client that does not acknowledge sees, and what stops the resends.
const tb = useBroker({ 'mqtt.retryIntervalMs': RETRY_MS, 'log.level': 'debug' })

describe.each(transports)('retransmission over %s', (transport: Transport) => {
  it('resends an unacknowledged QoS 1 PUBLISH with DUP=1 and the same packet id until PUBACK, then stops', async () => {
    const topic = `${uid('r')}/t`
    await expectResentUntilPuback(tb(), await subscribedRaw(tb(), transport, topic, 1), topic, 'hello')
  })

  it('resends a QoS 2 PUBLISH until PUBREC, then the PUBREL until PUBCOMP, then nothing', async () => {
    const topic = `${uid('r')}/t`
    const raw = await subscribedRaw(tb(), transport, topic, 2)
    const pub = await mqttClient(tb(), 'tcp')
    const pubrelsBefore = await retransmissions(tb(), 'pubrel')
    await pub.publishAsync(topic, 'two', { qos: 2 })
    const first = await raw.next<IPublishPacket>('publish')
    expect(first).toMatchObject({ qos: 2, dup: false })
    const id = first.messageId
    const again = await resentPublish(raw, id)
    expect(again).toMatchObject({ qos: 2, dup: true, topic })
    expect(again.payload.toString()).toBe('two')

    raw.send({ cmd: 'pubrec', messageId: id })
    await raw.next<IPubrelPacket>(p => p.cmd === 'pubrel' && p.messageId === id)
    await roundTrip(raw)
    const publishes = publishesWith(raw, id).length
    // The PUBREL is resent (same id) while PUBCOMP does not come, and the PUBLISH no more.
    await raw.next<IPubrelPacket>(p => p.cmd === 'pubrel' && p.messageId === id, RETRY_MS * 15)
    expect(publishesWith(raw, id).length).toBe(publishes)
    expect(await retransmissions(tb(), 'pubrel')).toBeGreaterThan(pubrelsBefore)

    raw.send({ cmd: 'pubcomp', messageId: id })
    await roundTrip(raw)
    await expectQuiet(() => raw.received.filter(p => (p as { messageId?: number }).messageId === id).length)
  })
})

describe('retransmission', () => {
  it('resends in the order the messages were first sent', async () => {
    const topic = `${uid('r')}/t`
    const raw = await subscribedRaw(tb(), 'tcp', topic, 1)
    const pub = await mqttClient(tb(), 'tcp')
    for (const payload of ['a', 'b', 'c']) await pub.publishAsync(topic, payload, { qos: 1 })
    await waitFor(() => raw.received.filter(p => p.cmd === 'publish' && !p.dup).length >= 3, 'three publishes')
    const originals = raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish' && !p.dup)
    expect(originals.map(p => p.payload.toString())).toEqual(['a', 'b', 'c'])
    const resent = []
    for (const original of originals) resent.push(await resentPublish(raw, original.messageId))
    expect(resent.map(p => p.payload.toString())).toEqual(['a', 'b', 'c'])
    // The first resend of each, in the order of the originals (a message may already be on its second resend).
    const positions = resent.map(p => raw.received.indexOf(p))
    expect([...positions].sort((x, y) => x - y)).toEqual(positions)
  })

  it('acknowledging one message stops its resends and not the others', async () => {
    const topic = `${uid('r')}/t`
    const raw = await subscribedRaw(tb(), 'tcp', topic, 1)
    const pub = await mqttClient(tb(), 'tcp')
    await pub.publishAsync(topic, 'acked', { qos: 1 })
    await pub.publishAsync(topic, 'left', { qos: 1 })
    const acked = await raw.next<IPublishPacket>('publish')
    const left = await raw.next<IPublishPacket>('publish')
    raw.send({ cmd: 'puback', messageId: acked.messageId })
    await roundTrip(raw)
    const ackedCopies = publishesWith(raw, acked.messageId).length
    await resentPublish(raw, left.messageId)
    await resentPublish(raw, left.messageId)
    expect(publishesWith(raw, acked.messageId).length).toBe(ackedCopies)
  })

  it('resends a retained message delivered on SUBSCRIBE, RETAIN kept', async () => {
    const topic = `${uid('r')}/t`
    const pub = await mqttClient(tb(), 'tcp')
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true })
    const raw = await subscribedRaw(tb(), 'tcp', topic, 1)
    const first = await raw.next<IPublishPacket>('publish')
    expect(first).toMatchObject({ retain: true, dup: false })
    const again = await resentPublish(raw, first.messageId)
    expect(again).toMatchObject({ retain: true, dup: true, topic })
    expect(again.payload.toString()).toBe('kept')
    await pub.publishAsync(topic, '', { qos: 1, retain: true })
  })

  it('resends to the member of a shared subscription that received the message, with the same packet id', async () => {
    const topic = `${uid('r')}/t`
    await expectResentUntilPuback(tb(), await subscribedRaw(tb(), 'tcp', `$share/${uid('g')}/${topic}`, 1), topic, 'shared')
  })

  it('counts every resend in culex_retransmissions_total and logs it at debug level', async () => {
    const topic = `${uid('r')}/t`
    const clientId = uid('r')
    const before = await retransmissions(tb(), 'publish')
    const raw = await subscribedRaw(tb(), 'tcp', topic, 1, { clientId })
    const pub = await mqttClient(tb(), 'tcp')
    await pub.publishAsync(topic, 'counted', { qos: 1 })
    const first = await raw.next<IPublishPacket>('publish')
    await resentPublish(raw, first.messageId)
    await roundTrip(raw)
    expect(await retransmissions(tb(), 'publish')).toBeGreaterThan(before)
    const lines = resendLogs(tb(), clientId)
    expect(lines.length).toBeGreaterThan(0)
    expect(lines[0]).toMatchObject({ level: 20, publishes: 1, pubrels: 0, unacknowledged: 1 })
  })

  it('stops when the client disconnects', async () => {
    const topic = `${uid('r')}/t`
    const clientId = uid('r')
    const raw = await subscribedRaw(tb(), 'tcp', topic, 1, { clientId })
    const pub = await mqttClient(tb(), 'tcp')
    await pub.publishAsync(topic, 'gone', { qos: 1 })
    const first = await raw.next<IPublishPacket>('publish')
    await resentPublish(raw, first.messageId)
    raw.destroy()
    await raw.closed
    await waitFor(() => tb().logs.some(l => l.msg === 'client disconnected' && l.clientId === clientId), 'the broker to see the disconnect')
    await expectQuiet(() => resendLogs(tb(), clientId).length)
  })
})
