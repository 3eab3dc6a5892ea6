import { describe, expect, it } from 'vitest'
import type { IDisconnectPacket } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { transports } from '../helpers/clients.js'
import { openRaw, remainingLength, type RawClient } from '../helpers/raw-client.js'

/** What a v5 client was told before its connection closed: the DISCONNECT's reason code and string, if any. */
async function toldOnClose (raw: RawClient): Promise<Array<[number | undefined, string | undefined]>> {
  expect(await raw.waitClosed(5000)).toBe(true)
  return raw.received.filter((p): p is IDisconnectPacket => p.cmd === 'disconnect').map(p => [p.reasonCode, p.properties?.reasonString])
}

/**
 * The server DISCONNECT a v5 client gets when Culex closes its connection for what it sent (docs/protocol.md,
 * "MQTT 5"): a packet over the size limit 0x95, a malformed packet 0x81, a protocol error 0x82, a Topic Alias not
 * offered 0x94, a refused publish with deadLetter.onRejectedPublish = disconnect (its PUBACK code).
 */
describe.each(transports)('MQTT 5 server DISCONNECT over %s', (transport) => {
  let t: TestBroker
  brokerPerTest(started => { t = started })

  const connected = async (clientId: string, b: TestBroker = t): Promise<RawClient> => {
    const raw = await openRaw(transport, b, { version: 5 })
    expect((await raw.connect({ clientId, protocolVersion: 5 })).reasonCode).toBe(0)
    return raw
  }

  it('0x95 for a packet whose header declares more than the broker reads, 0x81 for a malformed Remaining Length', async () => {
    const big = await connected('big')
    // a PUBLISH header declaring 200 MiB; the body never comes
    big.sendRaw(Buffer.concat([Buffer.from([0x30]), remainingLength(200 * 1024 * 1024), Buffer.from([0, 1, 0x61])]))
    const told = await toldOnClose(big)
    expect(told).toHaveLength(1)
    expect(told[0][0]).toBe(0x95)
    expect(told[0][1]).toMatch(/^a packet of 209715200 bytes, over the \d+ this server reads$/)

    const malformed = await connected('malformed')
    malformed.sendRaw(Buffer.from([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]))
    expect(await toldOnClose(malformed)).toEqual([[0x81, 'malformed remaining length']])
  })

  it('0x81 for a malformed packet (U+0000 in a topic), 0x82 for a protocol error (packet identifier 0)', async () => {
    const nul = await connected('nul')
    nul.send({ cmd: 'publish', topic: 'a\u0000b', payload: Buffer.from('x'), qos: 0, dup: false, retain: false })
    expect(await toldOnClose(nul)).toEqual([[0x81, 'U+0000 in a topic name']])

    const zero = await connected('zero')
    zero.send({ cmd: 'subscribe', messageId: 0, subscriptions: [{ topic: 'a', qos: 1, nl: false, rap: false, rh: 0 }] })
    expect(await toldOnClose(zero)).toEqual([[0x82, 'packet identifier 0']])
  })

  it('0x94 for a Topic Alias over the maximum, 0x82 for a Subscription Identifier of 0 or No Local on a shared subscription', async () => {
    const alias = await connected('alias')
    alias.send({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { topicAlias: 11 } })
    expect((await toldOnClose(alias)).map(([code]) => code)).toEqual([0x94])

    const subId = await connected('sub-id')
    subId.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 1, nl: false, rap: false, rh: 0 }], properties: { subscriptionIdentifier: 0 } })
    expect(await toldOnClose(subId)).toEqual([[0x82, 'a Subscription Identifier of 0']])

    const nl = await connected('nl-share')
    nl.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/a', qos: 1, nl: true, rap: false, rh: 0 }] })
    expect(await toldOnClose(nl)).toEqual([[0x82, 'No Local on a shared subscription']])
  })

  it('the reason code of a refused publish when deadLetter.onRejectedPublish is disconnect; no DISCONNECT to an MQTT 3.1.1 client', async () => {
    const strict = await startTestBroker({ 'deadLetter.onRejectedPublish': 'disconnect', 'limits.maxPayloadBytes': 100 })
    try {
      const raw = await connected('strict', strict)
      raw.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(200), qos: 1, messageId: 1, dup: false, retain: false })
      const told = await toldOnClose(raw)
      expect(told.map(([code]) => code)).toEqual([0x97])
      expect(told[0][1]).toMatch(/^too-large: limits.maxPayloadBytes/)
      expect(raw.received.map(p => p.cmd)).toEqual(['connack', 'disconnect'])

      const old = await openRaw(transport, strict)
      await old.connect({ clientId: 'strict311' })
      old.send({ cmd: 'publish', topic: '$SYS/x', payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false })
      expect(await old.waitClosed(5000)).toBe(true)
      expect(old.received.map(p => p.cmd)).toEqual(['connack'])
    } finally {
      await strict.close()
    }
  })
})
