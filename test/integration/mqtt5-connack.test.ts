import { describe, expect, it } from 'vitest'
import mqttPacket, { type IConnackPacket, type IConnectPacket } from 'mqtt-packet'
import { writeFile } from 'node:fs/promises'
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
    await waitFor(async () => !(await t.broker.store.hasSession(assigned)), 'the session removed at the close')
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

  it('gives a client that asks for Response Information the root of its response topics, which works as one with an ACL pattern', async () => {
    const asking = track(await v5(t.mqttUrl, { clientId: 'requester', properties: { requestResponseInformation: true } }))
    expect(asking.connack.properties?.responseInformation).toBe('response/requester/')
    const silent = track(await v5(t.mqttUrl, { clientId: 'quiet' }))
    expect(silent.connack.properties?.responseInformation).toBeUndefined()
    const assigned = track(await v5(t.mqttUrl, { clientId: '', properties: { requestResponseInformation: true } }))
    expect(assigned.connack.properties?.responseInformation).toBe(`response/${assigned.connack.properties?.assignedClientIdentifier as string}/`)

    const passwd = await writePasswordFile(path.join(t.dataDir, 'passwd'), { req: 'r', svc: 's' })
    const aclFile = path.join(t.dataDir, 'acl.conf')
    await writeFile(aclFile, 'user svc\ntopic read requests/#\ntopic write response/#\npattern readwrite response/%c/#\nuser req\ntopic write requests/#\n')
    const secured = await startTestBroker({ 'auth.passwordFile': passwd, 'auth.aclFile': aclFile, 'auth.watchFiles': false })
    try {
      const requester = await v5(secured.mqttUrl, { clientId: 'req-1', username: 'req', password: 'r', properties: { requestResponseInformation: true } })
      const root = requester.connack.properties?.responseInformation as string
      await requester.subscribeAsync(`${root}#`, { qos: 1 })
      const service = await v5(secured.mqttUrl, { clientId: 'svc-1', username: 'svc', password: 's' })
      service.on('message', (_topic, payload, packet) => {
        void service.publishAsync(packet.properties?.responseTopic as string, `re: ${payload.toString()}`, { qos: 1, properties: { correlationData: packet.properties?.correlationData } })
      })
      await service.subscribeAsync('requests/#', { qos: 1 })
      await requester.publishAsync('requests/time', 'what time is it', { qos: 1, properties: { responseTopic: `${root}time`, correlationData: Buffer.from('42') } })
      await waitFor(() => requester.received.length === 1, 'the response')
      expect(requester.received[0].topic).toBe('response/req-1/time')
      expect(requester.received[0].payload).toBe('re: what time is it')
      // another client may not read it
      const other = await v5(secured.mqttUrl, { clientId: 'req-2', username: 'req', password: 'r' })
      const refused = await other.subscribeAsync('response/req-1/#', { qos: 1 }).then(() => undefined, (err: { packet?: { granted?: number[] } }) => err.packet?.granted)
      expect(refused).toEqual([0x87])
      await Promise.all([requester, service, other].map(async c => await endClient(c)))
    } finally {
      await secured.close()
    }
  })

  it('gives none with mqtt.responseTopicPrefix empty, and refuses a prefix that could not be published to', async () => {
    const off = await startTestBroker({ 'mqtt.responseTopicPrefix': '' })
    try {
      const c = await v5(off.mqttUrl, { clientId: 'asking', properties: { requestResponseInformation: true } })
      expect(c.connack.properties?.responseInformation).toBeUndefined()
      await endClient(c)
    } finally {
      await off.close()
    }
    const refused = await startTestBroker({ 'mqtt.responseTopicPrefix': '$response/' }).then(() => undefined, (err: { details?: string[] }) => err.details)
    expect(refused).toEqual([expect.stringMatching(/^mqtt.responseTopicPrefix.*not starting with \$/)])
  })
})
