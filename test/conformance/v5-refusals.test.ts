import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import type { IConnackPacket, IDisconnectPacket, IPubackPacket, IPubcompPacket, IPubrecPacket, ISubackPacket } from 'mqtt-packet'
import {
  CLOSE_MS, fence, messagesOn, packet, rawV5, str, subscribe, transports, uid, useBroker, v5Client, waitForMessages,
  type Transport
} from './support.js'

// MQTT 5.0 reason codes of the refusals (§3.4.2.1 PUBACK, §3.5.2.1 PUBREC, §3.9.3 SUBACK), §3.3.2.3.2 Payload Format
// Indicator, §3.2.2.3.15 Response Information, §3.15 and §4.12 AUTH. The broker's ACL lets anyone do anything but
// read `deny-read/#` or write `deny-write/#`.
const aclFile = path.join(mkdtempSync(path.join(tmpdir(), 'culex-v5-refusals-')), 'acl.conf')
writeFileSync(aclFile, 'topic deny read deny-read/#\ntopic deny write deny-write/#\ntopic readwrite #\n')
const tb = useBroker({ 'auth.aclFile': aclFile, 'auth.watchFiles': false })

const sub = (topic: string): { topic: string, qos: 1, nl: boolean, rap: boolean, rh: number } => ({ topic, qos: 1, nl: false, rap: false, rh: 0 })

describe.each(transports)('MQTT 5 refusals, payload format, response information and AUTH over %s', (transport: Transport) => {
  const client = async (properties: Record<string, unknown> = {}) => await rawV5(tb(), transport, { clientId: uid('c'), properties })

  it('[MQTT-3.9.3-2][MQTT-3.8.4-6] SUBACK: a failure code per refused filter, in order, with a Reason String: 0x87 not authorized, 0x8F topic filter invalid; the others granted', async () => {
    const raw = await client()
    raw.send({ cmd: 'subscribe', messageId: 7, subscriptions: [sub(`${uid('ok')}/a`), sub('deny-read/x'), sub('$share//x'), sub(`${uid('ok')}/b`)] })
    const suback = await raw.next<ISubackPacket>('suback')
    expect([suback.messageId, suback.granted]).toEqual([7, [1, 0x87, 0x8F, 1]])
    expect(suback.properties?.reasonString).toMatch(/deny-read\/x: unauthorized.*\$share\/\/x: filter-invalid/)
  })

  it('[MQTT-3.9.3-2] SUBACK 0x91 (Packet Identifier in use) for a SUBSCRIBE reusing the identifier of one not answered yet', async () => {
    const raw = await client()
    raw.send({ cmd: 'subscribe', messageId: 9, subscriptions: [sub(`${uid('a')}/t`)] })
    raw.send({ cmd: 'subscribe', messageId: 9, subscriptions: [sub(`${uid('b')}/t`), sub(`${uid('c')}/t`)] })
    const acks = [await raw.next<ISubackPacket>('suback'), await raw.next<ISubackPacket>('suback')]
    expect(acks.map(a => a.granted).sort((x, y) => x.length - y.length)).toEqual([[1], [0x91, 0x91]])
  })

  it('[MQTT-3.4.2-1][MQTT-3.5.2-1] a refused publish: PUBACK 0x87 at QoS 1, PUBREC 0x87 at QoS 2, each with a Reason String; not delivered; after the failing PUBREC the id is a new message [MQTT-4.3.3-9]', async () => {
    const watcher = await v5Client(tb(), transport)
    await subscribe(watcher, { 'deny-write/#': 1 })
    const raw = await client()
    raw.send({ cmd: 'publish', topic: 'deny-write/a', payload: Buffer.from('refused'), qos: 1, messageId: 3, retain: false, dup: false })
    const puback = await raw.next<IPubackPacket>('puback')
    raw.send({ cmd: 'publish', topic: 'deny-write/b', payload: Buffer.from('refused'), qos: 2, messageId: 4, retain: false, dup: false })
    const pubrec = await raw.next<IPubrecPacket>('pubrec')
    expect([puback.messageId, puback.reasonCode, pubrec.messageId, pubrec.reasonCode]).toEqual([3, 0x87, 4, 0x87])
    expect([typeof puback.properties?.reasonString, typeof pubrec.properties?.reasonString]).toEqual(['string', 'string'])
    const topic = `${uid('after')}/t`
    await subscribe(watcher, { [topic]: 2 })
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('new'), qos: 2, messageId: 4, retain: false, dup: false })
    expect((await raw.next<IPubrecPacket>(p => p.cmd === 'pubrec' && p !== pubrec)).reasonCode ?? 0).toBe(0)
    raw.send({ cmd: 'pubrel', messageId: 4 })
    expect((await raw.next<IPubcompPacket>('pubcomp')).reasonCode ?? 0).toBe(0)
    expect((await waitForMessages(watcher, topic)).map(m => m.payload)).toEqual(['new'])
    await fence(watcher, watcher, topic)
    expect(watcher.received.filter(m => m.payload === 'refused')).toEqual([])
  })

  it('[§3.3.2.3.2] a Payload Format Indicator 1 with a payload that is not UTF-8: PUBACK 0x99, not delivered; a UTF-8 one is delivered with its indicator', async () => {
    const topic = `${uid('pfi')}/t`
    const watcher = await v5Client(tb(), transport)
    await subscribe(watcher, { [topic]: 1 })
    const raw = await client()
    raw.send({ cmd: 'publish', topic, payload: Buffer.from([0xff, 0xfe, 0x41]), qos: 1, messageId: 5, retain: false, dup: false, properties: { payloadFormatIndicator: true } })
    expect((await raw.next<IPubackPacket>('puback')).reasonCode).toBe(0x99)
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('héllo'), qos: 1, messageId: 6, retain: false, dup: false, properties: { payloadFormatIndicator: true } })
    expect((await raw.next<IPubackPacket>(p => p.cmd === 'puback' && p.messageId === 6)).reasonCode ?? 0).toBe(0)
    const [m] = await waitForMessages(watcher, topic)
    expect([m.payload, m.properties?.payloadFormatIndicator]).toEqual(['héllo', true])
    await fence(watcher, watcher, topic)
    expect(messagesOn(watcher, topic).filter(x => !x.payload.startsWith('fence'))).toHaveLength(1)
  })

  it('[§3.2.2.3.15] Response Information in CONNACK when the client asks for it (Request Response Information 1)', async () => {
    const raw = await client({ requestResponseInformation: true })
    const info = raw.received.find((p): p is IConnackPacket => p.cmd === 'connack')?.properties?.responseInformation
    expect(typeof info).toBe('string')
    expect(info).not.toBe('')
  })

  it('[MQTT-3.15.1-1] an AUTH whose reserved fixed-header bits are not 0 is malformed: closed', async () => {
    const raw = await client()
    raw.sendRaw(packet(0xf1, Buffer.from([0x18, 0])))
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
  })

  it('[§4.12][§3.15] an AUTH from a client that gave no Authentication Method in CONNECT is a protocol error: DISCONNECT 0x82, closed', async () => {
    const raw = await client()
    // AUTH 0x18 (continue authentication), properties: Authentication Method "X"
    raw.sendRaw(packet(0xf0, Buffer.from([0x18, 4, 0x15]), str('X')))
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.filter(p => p.cmd === 'disconnect').map(p => (p as IDisconnectPacket).reasonCode)).toEqual([0x82])
  })
})
