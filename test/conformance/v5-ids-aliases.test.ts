import { describe, expect, it } from 'vitest'
import type { IDisconnectPacket, IPublishPacket, ISubackPacket } from 'mqtt-packet'
import {
  brokerStillServes, CLOSE_MS, fence, id16, messagesOn, packet, rawV5, str, subscribe, transports, uid, useBroker, v5Client,
  waitForMessages, type RawClient, type Transport
} from './support.js'

// MQTT 5.0 §3.3.2.3.4 Topic Alias (both ways), §3.3.4 and §3.8.2.1.2 Subscription Identifiers. The broker runs with
// the default mqtt.topicAliasMaximum (10).
const tb = useBroker()

const TOPIC_ALIAS_MAXIMUM = 10

/** A QoS 1 PUBLISH with a Topic Alias (property 0x23), by hand: mqtt-packet will not send an alias of 0. */
function aliasedPublish (topic: string, alias: number, payload: string): Buffer {
  return packet(0x32, str(topic), id16(1), Buffer.from([3, 0x23, alias >> 8, alias & 0xff]), Buffer.from(payload))
}

const ids = (p: IPublishPacket): number[] => {
  const id = p.properties?.subscriptionIdentifier
  return id === undefined ? [] : Array.isArray(id) ? [...id].sort((a, b) => a - b) : [id]
}

describe.each(transports)('MQTT 5 Subscription Identifiers and Topic Aliases over %s', (transport: Transport) => {
  const subscriber = async (opts: { topicAliasMaximum?: number } = {}): Promise<RawClient> =>
    await rawV5(tb(), transport, { clientId: uid('sub'), properties: opts })
  const subscribeWithId = async (raw: RawClient, messageId: number, filter: string, id?: number): Promise<number[]> => {
    raw.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos: 1, nl: false, rap: false, rh: 0 }], ...(id === undefined ? {} : { properties: { subscriptionIdentifier: id } }) })
    return (await raw.next<ISubackPacket>('suback')).granted as number[]
  }

  it('[MQTT-3.3.4-3][MQTT-3.3.4-4] one copy for overlapping subscriptions carries the Subscription Identifier of every matching subscription that has one; none for a subscription without [MQTT-3.3.4-5]', async () => {
    const base = uid('sid')
    const raw = await subscriber()
    expect(await subscribeWithId(raw, 1, `${base}/t`, 2)).toEqual([1])
    expect(await subscribeWithId(raw, 2, `${base}/#`, 3)).toEqual([1])
    expect(await subscribeWithId(raw, 3, `${base}/+`)).toEqual([1])
    const other = await subscriber()
    await subscribeWithId(other, 1, `${base}/#`)
    const pub = await v5Client(tb(), transport)
    await pub.publishAsync(`${base}/t`, 'both', { qos: 1 })
    await pub.publishAsync(`${base}/u`, 'one', { qos: 1 })
    const got = [await raw.next<IPublishPacket>('publish'), await raw.next<IPublishPacket>('publish')]
    expect(got.map(p => [p.payload.toString(), ids(p)])).toEqual([['both', [2, 3]], ['one', [3]]])
    expect(ids(await other.next<IPublishPacket>('publish'))).toEqual([])
  })

  it('[MQTT-3.3.4-6] a Subscription Identifier in a client\'s PUBLISH is a protocol error: DISCONNECT 0x82, not delivered', async () => {
    const topic = `${uid('sidpub')}/t`
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [topic]: 1 })
    const raw = await subscriber()
    // property 0x0B (Subscription Identifier) = 7
    raw.sendRaw(packet(0x32, str(topic), id16(1), Buffer.from([2, 0x0b, 7]), Buffer.from('bad')))
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.filter(p => p.cmd === 'disconnect').map(p => (p as IDisconnectPacket).reasonCode)).toEqual([0x82])
    await fence(sub, sub, topic)
    expect(messagesOn(sub, topic).filter(m => m.payload === 'bad')).toEqual([])
  })

  it('[§3.8.2.1.2] a Subscription Identifier of 0 is a protocol error: closed without SUBACK; CONNACK says Subscription Identifiers Available', async () => {
    const raw = await subscriber()
    expect(raw.received.find(p => p.cmd === 'connack')?.properties?.subscriptionIdentifiersAvailable).not.toBe(false)
    // SUBSCRIBE, id 1, properties: 0x0B = 0
    raw.sendRaw(packet(0x82, id16(1), Buffer.from([2, 0x0b, 0]), str(`${uid('z')}/t`), Buffer.from([1])))
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.filter(p => p.cmd === 'suback')).toEqual([])
    await brokerStillServes(tb(), transport)
  })

  it('[MQTT-3.1.2-26][MQTT-3.3.2-7][MQTT-3.3.2-8] topic aliases to a client: never 0 nor over its Topic Alias Maximum; set with the topic, then sent with an empty topic; a new connection starts without them', async () => {
    const base = uid('out')
    const clientId = uid('alias')
    const receive = async (): Promise<IPublishPacket[]> => {
      const raw = await rawV5(tb(), transport, { clientId, properties: { topicAliasMaximum: 2 } })
      await subscribeWithId(raw, 1, `${base}/#`)
      const pub = await v5Client(tb(), transport)
      for (const t of ['a', 'b', 'c', 'a', 'b', 'c']) await pub.publishAsync(`${base}/${t}`, t, { qos: 1 })
      const got: IPublishPacket[] = []
      for (let i = 0; i < 6; i++) got.push(await raw.next<IPublishPacket>('publish'))
      raw.destroy()
      return got
    }
    for (const got of [await receive(), await receive()]) {
      const aliasOf = new Map<number, string>()
      for (const p of got) {
        const alias = p.properties?.topicAlias
        if (alias !== undefined) {
          expect(alias >= 1 && alias <= 2).toBe(true)
          if (p.topic !== '') aliasOf.set(alias, p.topic)
        }
        // what the client makes of it: the topic, or the one the alias was set to on this connection
        expect(p.topic !== '' ? p.topic : aliasOf.get(alias ?? -1)).toBe(`${base}/${p.payload.toString()}`)
      }
      // the first copy of each aliased topic names it in full: a second connection is not sent the first one's aliases
      expect(got[0].topic).toBe(`${base}/a`)
      expect(got.filter(p => p.topic === '').length).toBeGreaterThan(0)
    }
  })

  it('[MQTT-3.3.2-10][MQTT-3.3.2-11][MQTT-3.3.2-12] the server takes the client\'s aliases up to the Topic Alias Maximum it announced: a topic with an alias sets it, an empty topic uses it', async () => {
    const base = uid('in')
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [`${base}/#`]: 1 })
    const raw = await subscriber()
    expect(raw.received.find(p => p.cmd === 'connack')?.properties?.topicAliasMaximum).toBe(TOPIC_ALIAS_MAXIMUM)
    raw.sendRaw(aliasedPublish(`${base}/x`, TOPIC_ALIAS_MAXIMUM, 'set'))
    await raw.next('puback')
    raw.sendRaw(aliasedPublish('', TOPIC_ALIAS_MAXIMUM, 'used'))
    await raw.next('puback')
    const got = await waitForMessages(sub, `${base}/x`, 2)
    expect(got.map(m => [m.payload, m.properties?.topicAlias])).toEqual([['set', undefined], ['used', undefined]])
  })

  it.each([[0], [TOPIC_ALIAS_MAXIMUM + 1]])('[§3.3.2.3.4][MQTT-4.13.1-1] a Topic Alias of %i: DISCONNECT 0x94, not delivered', async (alias) => {
    const base = uid('badalias')
    const sub = await v5Client(tb(), transport)
    await subscribe(sub, { [`${base}/#`]: 1 })
    const raw = await subscriber()
    raw.sendRaw(aliasedPublish(`${base}/x`, alias, 'bad'))
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.filter(p => p.cmd === 'disconnect').map(p => (p as IDisconnectPacket).reasonCode)).toEqual([0x94])
    await fence(sub, sub, `${base}/fence`)
    expect(sub.received.filter(m => m.payload === 'bad')).toEqual([])
  })

  it('[MQTT-3.3.2-12] an empty topic with an alias not set on this connection is a protocol error: DISCONNECT 0x82', async () => {
    const setter = await subscriber()
    setter.sendRaw(aliasedPublish(`${uid('other')}/x`, 1, 'set'))
    await setter.next('puback')
    const raw = await subscriber()
    raw.sendRaw(aliasedPublish('', 1, 'bad'))
    expect(await raw.waitClosed(CLOSE_MS)).toBe(true)
    expect(raw.received.filter(p => p.cmd === 'disconnect').map(p => (p as IDisconnectPacket).reasonCode)).toEqual([0x82])
  })
})
