import { describe, expect, it } from 'vitest'
import type { IPubcompPacket, IPublishPacket, IPubrecPacket } from 'mqtt-packet'
import { endClient } from '../helpers/clients.js'
import {
  fence, isConnected, messagesOn, mqttClient, rawClient, serverPublish, subscribe, transports, uid, useBroker, waitFor,
  waitForMessages, type Transport
} from './support.js'

// MQTT 3.1.1 §4.7 Topic names and topic filters.
const tb = useBroker()

describe.each(transports)('topic matching over %s', (transport: Transport) => {
  /**
   * Subscribes one client per filter, publishes every topic once, and returns, per filter, the topics it received.
   * Filters and topics are written relative to a fresh prefix `P` (the string "P" is replaced).
   */
  async function matchTable (filters: string[], topics: string[]): Promise<Record<string, string[]>> {
    const p = uid('m')
    const abs = (s: string): string => s.replaceAll('P', p)
    const subs = await Promise.all(filters.map(async f => {
      const s = await mqttClient(tb(), transport)
      await subscribe(s, { [abs(f)]: 1, [`${p}/fence`]: 1 })
      return s
    }))
    const pub = await mqttClient(tb(), transport)
    for (const t of topics) await pub.publishAsync(abs(t), t, { qos: 1 })
    const result: Record<string, string[]> = {}
    for (const [i, f] of filters.entries()) {
      await fence(pub, subs[i], `${p}/fence`)
      result[f] = subs[i].received.filter(m => m.topic !== `${p}/fence`).map(m => m.payload).sort()
    }
    return result
  }

  it('[MQTT-4.7.1-3] "+" matches exactly one whole level, including an empty one', async () => {
    const got = await matchTable(
      ['P/+/c', 'P/sport/+', 'P/+'],
      ['P/a/c', 'P/a/b/c', 'P/c', 'P//c', 'P/sport', 'P/sport/', 'P/sport/x', 'P/sport/x/y']
    )
    expect(got['P/+/c']).toEqual(['P//c', 'P/a/c'].sort())
    // "sport/+" matches "sport/" but not "sport" (§4.7.1.3).
    expect(got['P/sport/+']).toEqual(['P/sport/', 'P/sport/x'].sort())
    expect(got['P/+']).toEqual(['P/c', 'P/sport'].sort())
  })

  it('[MQTT-4.7.1-2] "#" matches the parent level and any number of child levels: "sport/#" matches "sport"', async () => {
    const got = await matchTable(
      ['P/sport/#', 'P/#'],
      ['P/sport', 'P/sport/', 'P/sport/tennis', 'P/sport/tennis/player1', 'P/sports', 'P/other']
    )
    expect(got['P/sport/#']).toEqual(['P/sport', 'P/sport/', 'P/sport/tennis', 'P/sport/tennis/player1'].sort())
    expect(got['P/#']).toEqual(['P/other', 'P/sport', 'P/sport/', 'P/sport/tennis', 'P/sport/tennis/player1', 'P/sports'].sort())
  })

  it('[MQTT-4.7.1-3] "+" and "#" combine: "+/tennis/#" (relative to the prefix)', async () => {
    const got = await matchTable(
      ['P/+/tennis/#'],
      ['P/sport/tennis', 'P/sport/tennis/player1', 'P/x/tennis/a/b', 'P/sport/golf', 'P/tennis']
    )
    expect(got['P/+/tennis/#']).toEqual(['P/sport/tennis', 'P/sport/tennis/player1', 'P/x/tennis/a/b'].sort())
  })

  it('[4.7.1.3] a leading "/" makes an empty first level: "+/+" and "/+" match "/finance", "+" does not', async () => {
    // These filters start at the root, so unrelated traffic of other tests could match "+/+" or "+": only the
    // topic published here is looked at.
    const finance = `/${uid('fin')}`
    const filters = ['+/+', '/+', '+']
    const subs = await Promise.all(filters.map(async f => {
      const s = await mqttClient(tb(), transport)
      await subscribe(s, { [f]: 1, [`${finance}/fence`]: 1 })
      return s
    }))
    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(finance, 'finance', { qos: 1 })
    for (const s of subs) await fence(pub, s, `${finance}/fence`)
    expect(subs.map(s => messagesOn(s, finance).length)).toEqual([1, 1, 0])
  })

  it('[MQTT-4.7.3-4] topics are matched without normalisation: case, spaces and trailing "/" all count', async () => {
    const got = await matchTable(
      ['P/ACCOUNTS', 'P/a b', 'P/a/'],
      ['P/ACCOUNTS', 'P/Accounts', 'P/accounts', 'P/a b', 'P/a  b', 'P/ab', 'P/a/', 'P/a']
    )
    expect(got['P/ACCOUNTS']).toEqual(['P/ACCOUNTS'])
    expect(got['P/a b']).toEqual(['P/a b'])
    expect(got['P/a/']).toEqual(['P/a/'])
  })

  it('[MQTT-3.3.2-3] the topic name sent to a subscriber is the one published, not the filter', async () => {
    const p = uid('m')
    const sub = await mqttClient(tb(), transport)
    await subscribe(sub, { [`${p}/+/x/#`]: 1 })
    const pub = await mqttClient(tb(), transport)
    await pub.publishAsync(`${p}/a/x/b/c`, 'named', { qos: 1 })
    await waitFor(() => sub.received.length > 0, 'a message')
    expect(sub.received.map(m => m.topic)).toEqual([`${p}/a/x/b/c`])
  })

  describe('"$" topics', () => {
    it('[MQTT-4.7.2-1] "#" and "+/..." filters do not match a "$" topic; filters that start with "$" do', async () => {
      const d = `$${uid('d')}`
      const wild = await mqttClient(tb(), transport)
      await subscribe(wild, { '#': 0, '+/x': 0, '+/+': 0, '+': 0, [`${d}/fence`]: 0 })
      const explicit = await mqttClient(tb(), transport)
      await subscribe(explicit, { [`${d}/x`]: 0, [`${d}/fence`]: 0 })
      const dollarWild = await mqttClient(tb(), transport)
      await subscribe(dollarWild, { [`${d}/#`]: 0, [`${d}/fence`]: 0 })

      await serverPublish(tb(), { topic: `${d}/x`, payload: 'reserved' })
      await serverPublish(tb(), { topic: d, payload: 'reserved-root' })
      await serverPublish(tb(), { topic: `${d}/fence`, payload: 'fence' })
      await waitFor(() => [wild, explicit, dollarWild].every(c => messagesOn(c, `${d}/fence`).length === 1), 'the fence on all three')

      expect(wild.received.filter(m => m.topic.startsWith('$') && m.topic !== `${d}/fence`)).toEqual([])
      expect(messagesOn(explicit, `${d}/x`).map(m => m.payload)).toEqual(['reserved'])
      expect(dollarWild.received.filter(m => m.topic !== `${d}/fence`).map(m => m.payload).sort()).toEqual(['reserved', 'reserved-root'])
    })

    it('[MQTT-4.7.2-1] the broker\'s own $SYS topics reach "$SYS/#" but not "#"', async () => {
      const wild = await mqttClient(tb(), transport)
      await subscribe(wild, { '#': 0 })
      const sys = await mqttClient(tb(), transport)
      await subscribe(sys, { '$SYS/#': 0 })
      // A new connection makes aedes publish $SYS/<broker id>/new/clients.
      const id = uid('sys')
      await mqttClient(tb(), transport, { clientId: id })
      await waitFor(() => sys.received.some(m => m.topic.endsWith('/new/clients') && m.payload === id), '$SYS new/clients')
      const fenceTopic = `${uid('m')}/fence`
      await fence(sys, wild, fenceTopic, 0)
      expect(wild.received.filter(m => m.topic.startsWith('$'))).toEqual([])
    })

    it('[MQTT-4.7.2-1] a retained "$" message is not sent to a new "#" subscription', async () => {
      const d = `$${uid('d')}`
      await serverPublish(tb(), { topic: `${d}/r`, payload: 'retained-reserved', qos: 1, retain: true })
      const explicit = await mqttClient(tb(), transport)
      await subscribe(explicit, { [`${d}/+`]: 1 })
      await waitForMessages(explicit, `${d}/r`)
      const wild = await mqttClient(tb(), transport)
      const p = uid('m')
      const pub = await mqttClient(tb(), transport)
      await pub.publishAsync(`${p}/zz`, 'marker', { qos: 1, retain: true })
      await subscribe(wild, { '#': 1 })
      await waitForMessages(wild, `${p}/zz`)
      await fence(pub, wild, `${p}/fence`)
      expect(wild.received.filter(m => m.topic.startsWith('$'))).toEqual([])
    })

    it('[MQTT-4.7.2-1] "$" messages are not queued for an offline persistent session\'s "#" or "+/..." filters', async () => {
      const id = uid('off')
      const d = `$${uid('d')}`
      const first = await mqttClient(tb(), transport, { clientId: id, clean: false })
      await subscribe(first, { '#': 1, '+/q': 1 })
      await endClient(first)
      await waitFor(() => !isConnected(tb(), id), 'the session to go offline')
      try {
        await serverPublish(tb(), { topic: `${d}/q`, payload: 'reserved-1', qos: 1 })
        await serverPublish(tb(), { topic: d, payload: 'reserved-2', qos: 2 })
        const marker = `${id}/q`
        const pub = await mqttClient(tb(), transport)
        await pub.publishAsync(marker, 'after-reserved', { qos: 1 })
        const back = await mqttClient(tb(), transport, { clientId: id, clean: false })
        expect(back.sessionPresent).toBe(true)
        await waitForMessages(back, marker)
        await fence(pub, back, `${id}/fence`)
        expect(back.received.filter(m => m.topic.startsWith('$'))).toEqual([])
        expect(messagesOn(back, marker)).toHaveLength(1)
      } finally {
        // A persistent "#" session would queue every later test's messages: end it.
        await mqttClient(tb(), transport, { clientId: id, clean: true })
      }
    })

    it.each([0, 1, 2] as const)('[MQTT-3.3.5-2] a client cannot publish to a "$" topic (4.7.2): QoS %i is acknowledged as usual, not delivered, and the client stays connected', async (qos) => {
      const d = `$${uid('d')}`
      const sub = await mqttClient(tb(), transport)
      await subscribe(sub, { [`${d}/p`]: 2, [`${d}/#`]: 2 })
      const p = uid('m')
      await subscribe(sub, { [`${p}/after`]: 2 })
      const raw = await rawClient(tb(), transport)
      await raw.connect({ clientId: uid('pub') })
      const publish: IPublishPacket = { cmd: 'publish', topic: `${d}/p`, payload: Buffer.from('client-dollar'), qos, retain: false, dup: false, ...(qos > 0 ? { messageId: 11 } : {}) }
      raw.send(publish)
      if (qos === 1) expect((await raw.next('puback')).messageId).toBe(11)
      if (qos === 2) {
        expect((await raw.next<IPubrecPacket>('pubrec')).messageId).toBe(11)
        raw.send({ cmd: 'pubrel', messageId: 11 })
        expect((await raw.next<IPubcompPacket>('pubcomp')).messageId).toBe(11)
      }
      // Still connected: the same connection publishes a normal message, which arrives.
      raw.send({ cmd: 'publish', topic: `${p}/after`, payload: Buffer.from('still-here'), qos: 1, messageId: 12, retain: false, dup: false })
      expect((await raw.next('puback')).messageId).toBe(12)
      await waitForMessages(sub, `${p}/after`)
      expect(raw.isClosed).toBe(false)
      expect(sub.received.filter(m => m.topic.startsWith('$'))).toEqual([])
    })
  })
})
