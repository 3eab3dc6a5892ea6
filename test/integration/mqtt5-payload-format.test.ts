import { describe, expect, it } from 'vitest'
import type { IPubackPacket, IPubcompPacket, IPubrecPacket } from 'mqtt-packet'
import type { TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectClient, connectV5 as v5, waitFor } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'

/** MQTT 5 Payload Format Indicator 1 (UTF-8) with a payload that is not UTF-8: refused 0x99 and dead-lettered. */
describe('MQTT 5 Payload Format Indicator', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })
  const notUtf8 = Buffer.from([0x61, 0xff, 0xfe, 0x62])

  it('refuses a QoS 1 publish whose payload is not UTF-8 with PUBACK 0x99, drops a QoS 0 one, and dead-letters both', async () => {
    const dlq = track(await connectClient(t.mqttUrl, { clientId: 'dlq-watcher' }))
    await dlq.subscribeAsync('$DLQ/#', { qos: 1 })
    const sub = track(await v5(t.mqttUrl, { clientId: 'pfi-sub' }))
    await sub.subscribeAsync('pfi/#', { qos: 1 })
    const raw = await openRaw('tcp', t, { version: 5 })
    expect((await raw.connect({ clientId: 'pfi-pub', protocolVersion: 5 })).reasonCode).toBe(0)
    const utf8 = { payloadFormatIndicator: true }
    raw.send({ cmd: 'publish', topic: 'pfi/bad', payload: notUtf8, qos: 1, messageId: 1, dup: false, retain: false, properties: utf8 })
    raw.send({ cmd: 'publish', topic: 'pfi/bad0', payload: notUtf8, qos: 0, dup: false, retain: false, properties: utf8 })
    raw.send({ cmd: 'publish', topic: 'pfi/good', payload: Buffer.from('héllo'), qos: 1, messageId: 2, dup: false, retain: false, properties: utf8 })
    // without the indicator the payload is opaque bytes: not checked
    raw.send({ cmd: 'publish', topic: 'pfi/binary', payload: notUtf8, qos: 1, messageId: 3, dup: false, retain: false })
    const acks = await Promise.all([1, 2, 3].map(async id => await raw.next<IPubackPacket>(p => p.cmd === 'puback' && p.messageId === id)))
    expect(acks.map(a => a.reasonCode ?? 0)).toEqual([0x99, 0x00, 0x00])
    expect(acks[0].properties?.reasonString).toMatch(/^invalid-payload: Payload Format Indicator 1/)
    await waitFor(() => sub.received.length >= 2 && dlq.received.length >= 2, 'the two good messages and the two dead letters')
    expect(sub.received.map(m => m.topic).sort()).toEqual(['pfi/binary', 'pfi/good'])
    expect(sub.received.find(m => m.topic === 'pfi/good')?.properties?.payloadFormatIndicator).toBe(true)
    expect(dlq.received.map(m => m.topic).sort()).toEqual(['$DLQ/invalid-payload/pfi/bad', '$DLQ/invalid-payload/pfi/bad0'])
    raw.destroy()
  })

  it('refuses a QoS 2 publish whose payload is not UTF-8 with PUBREC 0x99, which ends its flow', async () => {
    const raw = await openRaw('tcp', t, { version: 5 })
    expect((await raw.connect({ clientId: 'pfi-pub2', protocolVersion: 5 })).reasonCode).toBe(0)
    raw.send({ cmd: 'publish', topic: 'pfi/bad2', payload: notUtf8, qos: 2, messageId: 7, dup: false, retain: false, properties: { payloadFormatIndicator: true } })
    const rec = await raw.next<IPubrecPacket>(p => p.cmd === 'pubrec' && p.messageId === 7)
    expect(rec.reasonCode).toBe(0x99)
    expect(rec.properties?.reasonString).toMatch(/^invalid-payload: Payload Format Indicator 1/)
    // the flow ended with the PUBREC: a PUBREL for it is not known
    raw.send({ cmd: 'pubrel', messageId: 7 })
    expect((await raw.next<IPubcompPacket>(p => p.cmd === 'pubcomp' && p.messageId === 7)).reasonCode).toBe(0x92)
    raw.destroy()
  })
})
