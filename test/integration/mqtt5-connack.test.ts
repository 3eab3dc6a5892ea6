import { describe, expect, it } from 'vitest'
import mqttPacket, { type IConnackPacket, type IConnectPacket } from 'mqtt-packet'
import path from 'node:path'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { writePasswordFile } from '../auth/support.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectClient, connectV5 as v5, endClient, waitFor } from '../helpers/clients.js'
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

  it('answers a login the failed-login backoff held with 0x9F (connection rate exceeded) and why; the right password still gets in', async () => {
    const file = await writePasswordFile(path.join(t.dataDir, 'passwords'), { alice: 'secret' })
    const secured = await startTestBroker({ 'auth.passwordFile': file, 'auth.failedLoginDelayMs': 20, 'auth.failedLoginMaxDelayMs': 100 })
    try {
      const attempt = async (password: string): Promise<IConnackPacket> => {
        const raw = await openRaw('tcp', secured, { version: 5 })
        const connack = await raw.connect({ clientId: 'guess', username: 'alice', password: Buffer.from(password), protocolVersion: 5 })
        raw.destroy()
        return connack
      }
      const first = await attempt('wrong')
      expect([first.reasonCode, first.properties]).toEqual([0x86, undefined])
      const second = await attempt('wrong')
      expect(second.reasonCode).toBe(0x9F)
      expect(second.properties?.reasonString).toBe('login failed after 1 failed logins from this address; this attempt was held 20 ms')
      expect((await attempt('wrong')).properties?.reasonString).toMatch(/after 2 failed logins .* held 40 ms$/)
      expect((await attempt('secret')).reasonCode).toBe(0)
      // an MQTT 3.1.1 client gets its 3.1.1 code as before
      await attempt('wrong')
      const old = await connectClient(secured.mqttUrl, { clientId: 'guess311', username: 'alice', password: 'wrong' }).then(() => undefined, (err: { code?: number }) => err.code)
      expect(old).toBe(4)
    } finally {
      await secured.close()
    }
  })
})
