import { describe, expect, it } from 'vitest'
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, IPubrelPacket } from 'mqtt-packet'
import { endClient } from '../helpers/clients.js'
import {
  CLOSE_MS, fence, isConnected, messagesOn, rawClient, subscribe, transports, uid, useBroker, v5Client, waitFor,
  waitForMessages, type RawClient, type TestClient, type Transport
} from './support.js'

// MQTT 5.0 §3.1.2.4 Clean Start, §3.1.2.11.2 Session Expiry Interval, §3.2.2.1.1 Session Present, §3.14.2.2.2 the
// Session Expiry Interval of DISCONNECT, §4.1 Session State, §4.4 message delivery retry, §3.3.2.3.3 Message Expiry.
const tb = useBroker()

/** Whether the broker holds a session for this client id (what a Clean Start 0 connect would resume). */
async function hasSession (clientId: string): Promise<boolean> {
  return (await tb().broker.store.sessionInfo(clientId)) !== undefined
}

describe.each(transports)('MQTT 5 sessions over %s', (transport) => {
  const SESSION = { sessionExpiryInterval: 3600 }

  /** Connects at v5, subscribes when asked, ends with DISCONNECT 0x00 (with these DISCONNECT properties); returns the client. */
  async function visit (clientId: string, clean: boolean, properties: Record<string, unknown>, filters?: Record<string, 0 | 1 | 2>, disconnectProperties?: Record<string, unknown>): Promise<TestClient> {
    const c = await v5Client(tb(), transport, { clientId, clean, properties })
    if (filters !== undefined) await subscribe(c, filters)
    await new Promise<void>(resolve => c.end(false, disconnectProperties === undefined ? {} : { properties: disconnectProperties }, () => resolve()))
    await waitFor(() => !isConnected(tb(), clientId), `${clientId} gone`)
    return c
  }

  it('[MQTT-3.1.2-6] Clean Start 0 with no session creates one: Session Present 0 [MQTT-3.2.2-3]', async () => {
    const c = await visit(uid('s'), false, SESSION)
    expect(c.sessionPresent).toBe(false)
    expect(c.connack.reasonCode).toBe(0)
  })

  it('[MQTT-3.1.2-5][MQTT-3.2.2-3] Clean Start 0 resumes the session: Session Present 1, what was queued is delivered with its properties, the subscriptions are live [MQTT-3.1.2-23]', async () => {
    const id = uid('s')
    const topic = `${id}/t`
    await visit(id, false, SESSION, { [topic]: 2 })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'one', { qos: 1, properties: { contentType: 'text/plain', userProperties: { n: '1' } } })
    await pub.publishAsync(topic, 'two', { qos: 2, properties: { correlationData: Buffer.from('c2') } })
    const back = await v5Client(tb(), transport, { clientId: id, clean: false, properties: SESSION })
    expect(back.sessionPresent).toBe(true)
    await waitForMessages(back, topic, 2)
    await pub.publishAsync(topic, 'live', { qos: 1 })
    const got = await waitForMessages(back, topic, 3)
    expect(got.map(m => [m.payload, m.qos, m.properties])).toEqual([
      ['one', 1, { contentType: 'text/plain', userProperties: { n: '1' } }],
      ['two', 2, { correlationData: Buffer.from('c2') }],
      ['live', 1, undefined]
    ])
  })

  it('[MQTT-3.1.2-4][MQTT-3.2.2-2] Clean Start 1 discards the existing session: Session Present 0, its subscriptions and queue are gone', async () => {
    const id = uid('s')
    const topic = `${id}/t`
    await visit(id, false, SESSION, { [topic]: 1 })
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(topic, 'queued', { qos: 1 })
    const clean = await v5Client(tb(), transport, { clientId: id, clean: true, properties: SESSION })
    expect(clean.sessionPresent).toBe(false)
    await subscribe(clean, { [`${id}/fence`]: 1 })
    await pub.publishAsync(topic, 'live', { qos: 1 })
    await fence(pub, clean, `${id}/fence`)
    expect(messagesOn(clean, topic)).toEqual([])
  })

  it('[MQTT-3.1.2-23] a Session Expiry Interval of 0 (absent): the session ends with the connection, even with Clean Start 0', async () => {
    const id = uid('s')
    await visit(id, false, {}, { [`${id}/t`]: 1 })
    const back = await v5Client(tb(), transport, { clientId: id, clean: false })
    expect(back.sessionPresent).toBe(false)
  })

  it('[MQTT-4.1.0-2] the session is discarded once the connection is closed and its Session Expiry Interval has passed [MQTT-4.1.0-1]', async () => {
    const id = uid('s')
    const c = await v5Client(tb(), transport, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } })
    await subscribe(c, { [`${id}/t`]: 1 })
    // kept while connected, however long that is
    expect(await hasSession(id)).toBe(true)
    await endClient(c)
    const left = Date.now()
    expect(await hasSession(id)).toBe(true)
    await waitFor(async () => !await hasSession(id), 'the session to expire', 4000)
    expect(Date.now() - left).toBeGreaterThanOrEqual(900)
    const back = await v5Client(tb(), transport, { clientId: id, clean: false, properties: { sessionExpiryInterval: 1 } })
    expect(back.sessionPresent).toBe(false)
  })

  it('§3.14.2.2.2 the Session Expiry Interval of DISCONNECT replaces the CONNECT\'s: 0 ends the session at the disconnect', async () => {
    const id = uid('s')
    await visit(id, false, SESSION, { [`${id}/t`]: 1 }, { sessionExpiryInterval: 0 })
    const back = await v5Client(tb(), transport, { clientId: id, clean: false, properties: SESSION })
    expect(back.sessionPresent).toBe(false)
  })

  it('§3.14.2.2.2 a non-zero Session Expiry Interval in DISCONNECT after 0 in CONNECT is a protocol error: DISCONNECT 0x82, closed, no session kept', async () => {
    const id = uid('s')
    const raw = await rawClient(tb(), transport, { version: 5 })
    expect((await raw.connect({ clientId: id, protocolVersion: 5, clean: false })).reasonCode).toBe(0)
    raw.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 3600 } })
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.map(p => [p.cmd, (p as IDisconnectPacket).reasonCode])).toEqual([['connack', 0], ['disconnect', 0x82]])
    await waitFor(() => !isConnected(tb(), id), `${id} gone`)
    const back = await v5Client(tb(), transport, { clientId: id, clean: false, properties: SESSION })
    expect(back.sessionPresent).toBe(false)
  })

  describe('redelivery of unacknowledged packets (raw MQTT 5 subscriber)', () => {
    async function persistentRaw (clientId: string, t: Transport = transport): Promise<{ raw: RawClient, connack: IConnackPacket }> {
      await waitFor(() => !isConnected(tb(), clientId), `${clientId} gone`)
      const raw = await rawClient(tb(), t, { version: 5 })
      const connack = await raw.connect({ clientId, protocolVersion: 5, clean: false, properties: SESSION })
      expect(connack.reasonCode).toBe(0)
      return { raw, connack }
    }

    async function receiveUnacked (clientId: string, topic: string, qos: 1 | 2): Promise<{ raw: RawClient, first: IPublishPacket }> {
      const { raw } = await persistentRaw(clientId)
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos, nl: false, rap: false, rh: 0 }] })
      await raw.next('suback')
      const pub = await v5Client(tb(), transport)
      await pub.publishAsync(topic, 'unacked', { qos, properties: { userProperties: { k: 'v' } } })
      const first = await raw.next<IPublishPacket>('publish')
      expect([first.qos, first.dup, first.payload.toString()]).toEqual([qos, false, 'unacked'])
      return { raw, first }
    }

    it('[MQTT-4.4.0-1] an unacknowledged QoS 1 PUBLISH is re-sent on reconnect with its packet identifier, DUP 1 [MQTT-3.3.1-1] and its properties', async () => {
      const id = uid('r')
      const { raw, first } = await receiveUnacked(id, `${id}/t`, 1)
      raw.destroy()
      const { raw: again, connack } = await persistentRaw(id)
      expect(connack.sessionPresent).toBe(true)
      const resent = await again.next<IPublishPacket>('publish')
      expect([resent.messageId, resent.dup, resent.payload.toString(), resent.properties?.userProperties]).toEqual([first.messageId, true, 'unacked', { k: 'v' }])
    })

    it('[MQTT-4.4.0-1] an unacknowledged PUBREL is re-sent on reconnect with its packet identifier and reason code 0x00 [MQTT-3.6.2-1], the PUBLISH is not', async () => {
      const id = uid('r')
      const topic = `${id}/t`
      const { raw, first } = await receiveUnacked(id, topic, 2)
      raw.send({ cmd: 'pubrec', messageId: first.messageId, reasonCode: 0 })
      expect((await raw.next<IPubrelPacket>('pubrel')).messageId).toBe(first.messageId)
      raw.destroy()
      const { raw: again } = await persistentRaw(id)
      const resent = await again.next()
      expect([resent.cmd, resent.messageId, (resent as IPubrelPacket).reasonCode ?? 0]).toEqual(['pubrel', first.messageId, 0])
      again.send({ cmd: 'pubcomp', messageId: first.messageId, reasonCode: 0 })
      const pub = await v5Client(tb(), transport)
      await pub.publishAsync(topic, 'next', { qos: 2 })
      expect((await again.next<IPublishPacket>('publish')).payload.toString()).toBe('next')
      expect(again.received.filter(p => p.cmd === 'publish')).toHaveLength(1)
    })
  })

  it('[MQTT-3.3.2-5][MQTT-3.3.2-6] a queued message past its Message Expiry Interval is not delivered; one within it comes with the interval counted down', async () => {
    const id = uid('s')
    const topic = `${id}/t`
    await visit(id, false, SESSION, { [topic]: 1 })
    const pub = await v5Client(tb(), transport)
    const publishedAt = Date.now()
    await pub.publishAsync(topic, 'short-lived', { qos: 1, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync(topic, 'long-lived', { qos: 1, properties: { messageExpiryInterval: 60 } })
    // past the 1 s interval, and a second more for the count in whole seconds
    await waitFor(() => Date.now() >= publishedAt + 2100, 'the short interval to run out', 3000)
    const back = await v5Client(tb(), transport, { clientId: id, clean: false, properties: SESSION })
    await waitForMessages(back, topic)
    await fence(pub, back, topic)
    const got = messagesOn(back, topic).filter(m => !m.payload.startsWith('fence'))
    expect(got.map(m => m.payload)).toEqual(['long-lived'])
    const remaining = got[0].properties?.messageExpiryInterval as number
    expect(remaining).toBeGreaterThanOrEqual(55)
    expect(remaining).toBeLessThanOrEqual(58)
  })
})
