import { describe, expect, it } from 'vitest'
import mqttPacket, { type IConnackPacket, type IConnectPacket } from 'mqtt-packet'
import { type TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectV5 as v5, endClient, waitFor } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

/** A v5 CONNECT with an empty client id and Clean Start 0, which mqtt-packet will not encode: the flag is cleared by hand. */
async function connectEmptyIdCleanStart0 (raw: RawClient, opts: Partial<IConnectPacket> = {}): Promise<IConnackPacket> {
  const bytes = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: '', ...opts }, { protocolVersion: 5 })
  // fixed header (1 byte, 1 length byte for a short packet), protocol name (6), level (1), then the connect flags
  const flags = 1 + 1 + 6 + 1
  bytes[flags] &= ~0x02
  raw.sendRaw(bytes)
  return await raw.next<IConnackPacket>('connack')
}

/**
 * What a v5 client is told in CONNACK beyond the defaults (docs/protocol.md, "MQTT 5"): an assigned identifier
 * whatever Clean Start, the reason code of every login refusal, Response Information.
 */
describe('MQTT 5 CONNACK', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })

  it('assigns an identifier to an empty one with Clean Start 0 and keeps the session under it for its interval', async () => {
    const raw = await openRaw('tcp', t, { version: 5 })
    const connack = await connectEmptyIdCleanStart0(raw, { properties: { sessionExpiryInterval: 60 } })
    expect(connack.reasonCode).toBe(0)
    expect(connack.sessionPresent).toBe(false)
    const assigned = connack.properties?.assignedClientIdentifier
    expect(typeof assigned).toBe('string')
    // the interval asked for is granted: no Session Expiry Interval in CONNACK
    expect(connack.properties?.sessionExpiryInterval).toBeUndefined()
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'assigned/#', qos: 1, nl: false, rap: false, rh: 0 }] })
    await raw.next('suback')
    await raw.disconnect()

    const pub = track(await v5(t.mqttUrl, { clientId: 'assigned-pub' }))
    await pub.publishAsync('assigned/x', 'kept for you', { qos: 1 })
    const again = track(await v5(t.mqttUrl, { clientId: assigned as string, clean: false, properties: { sessionExpiryInterval: 60 } }))
    expect(again.sessionPresent).toBe(true)
    await waitFor(() => again.received.length >= 1, 'the queued message under the assigned identifier')
    expect(again.received.map(m => m.payload)).toEqual(['kept for you'])
  })

  it('assigns an identifier with Clean Start 1 and an interval: the session is kept, resumable by the assigned id', async () => {
    const first = await v5(t.mqttUrl, { clientId: '', clean: true, properties: { sessionExpiryInterval: 60 } })
    const assigned = first.connack.properties?.assignedClientIdentifier as string
    expect(first.connack.properties?.sessionExpiryInterval).toBeUndefined()
    await first.subscribeAsync('kept/#', { qos: 1 })
    await endClient(first)
    const again = track(await v5(t.mqttUrl, { clientId: assigned, clean: false, properties: { sessionExpiryInterval: 60 } }))
    expect(again.sessionPresent).toBe(true)
  })

  it('an empty identifier with Clean Start 0 and no interval gets a session that ends with the connection', async () => {
    const raw = await openRaw('tcp', t, { version: 5 })
    const connack = await connectEmptyIdCleanStart0(raw)
    expect(connack.reasonCode).toBe(0)
    const assigned = connack.properties?.assignedClientIdentifier as string
    await raw.disconnect()
    await waitFor(() => !t.broker.store.hasSession(assigned), 'the session removed at the close')
  })
})
