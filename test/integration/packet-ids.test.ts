import { afterEach, describe, expect, it } from 'vitest'
import type { Client } from 'aedes'
import type { IPublishPacket, Packet } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'
import { Rng } from '../fuzz/mutator.js'
import type { ClientInternals } from '../../src/protocol/aedes-internals.js'

/**
 * A persistent-session receiver as MQTT 3.1.1 describes it, over the byte-level client so every packet id is seen:
 * an id is held from its PUBLISH until this side sends PUBACK (QoS 1) or PUBCOMP (QoS 2). A QoS 2 PUBLISH under an
 * id still held is the same message again and is not passed on [MQTT-4.3.3-2], so a broker that reuses a held id
 * for a new message loses that message; `reused` records each time it happens.
 */
class Receiver {
  /** Packet id → the message it carries, while held by this side. */
  readonly held = new Map<number, { payload: string, qos: number, received: boolean }>()
  /** Payload → how many times it was passed on to the application. */
  readonly delivered = new Map<string, number>()
  readonly reused: string[] = []
  raw: RawClient | undefined
  #read = 0

  async connect (t: TestBroker, clientId: string): Promise<void> {
    this.raw = await openRaw('tcp', t)
    this.#read = 0
    expect((await this.raw.connect({ clientId, clean: false })).returnCode).toBe(0)
  }

  /** Packets not looked at yet, in order. */
  take (): Packet[] {
    const raw = this.raw as RawClient
    const fresh = raw.received.slice(this.#read)
    this.#read = raw.received.length
    return fresh
  }

  /** Records one PUBLISH the broker sent; PUBREL needs no bookkeeping until it is answered. */
  see (p: IPublishPacket): void {
    const id = p.messageId as number
    const payload = p.payload.toString()
    const before = this.held.get(id)
    if (before !== undefined) {
      if (before.payload !== payload || !p.dup) this.reused.push(`id ${id} held by ${before.payload} reused for ${payload} (dup ${String(p.dup)})`)
      return
    }
    if (p.qos > 0) this.held.set(id, { payload, qos: p.qos, received: false })
    this.delivered.set(payload, (this.delivered.get(payload) ?? 0) + 1)
  }

  puback (id: number): void {
    this.held.delete(id)
    this.raw?.send({ cmd: 'puback', messageId: id })
  }

  pubrec (id: number): void {
    const h = this.held.get(id)
    if (h !== undefined) h.received = true
    this.raw?.send({ cmd: 'pubrec', messageId: id })
  }

  pubcomp (id: number): void {
    this.held.delete(id)
    this.raw?.send({ cmd: 'pubcomp', messageId: id })
  }

  /** Acknowledges whatever arrives, each flow to its end, until `done` holds. */
  async ackAll (done: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (const [id, h] of [...this.held]) {
      if (h.qos === 1) this.puback(id)
      else if (!h.received) this.pubrec(id)
    }
    while (!done()) {
      for (const p of this.take()) {
        if (p.cmd === 'publish') {
          this.see(p)
          if (p.qos === 1) this.puback(p.messageId as number)
          else if (p.qos === 2) this.pubrec(p.messageId as number)
        } else if (p.cmd === 'pubrel') {
          this.pubcomp(p.messageId as number)
        }
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${this.delivered.size} messages passed on, ${this.held.size} ids held, ${this.reused.length} reused while held`)
      if (!done()) await (this.raw as RawClient).next(p => p.cmd === 'publish' || p.cmd === 'pubrel', Math.max(1, deadline - Date.now())).catch(() => undefined)
    }
  }
}

/** Sets the packet-id counter of the next connection of `clientId` (aedes' client._nextId) once it is registered. */
function seedCounter (t: TestBroker, clientId: string, next: number): void {
  const onClient = (client: Client): void => {
    if (client.id !== clientId) return
    t.broker.aedes.removeListener('client', onClient)
    ;(client as ClientInternals)._nextId = next
  }
  t.broker.aedes.on('client', onClient)
}

describe('packet identifiers of a persistent session', () => {
  let t: TestBroker | undefined
  afterEach(async () => { await t?.close() })

  it('never gives a new message an id its earlier connection still holds, even when the counter starts among them', async () => {
    t = await startTestBroker()
    const rx = new Receiver()
    await rx.connect(t, 'pid-held')
    rx.raw?.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'pid/#', qos: 2 }] })
    await rx.raw?.next('suback')
    const pub = await connectClient(t.mqttUrl, { clientId: 'pid-pub' })
    await Promise.all(Array.from({ length: 60 }, async (_, i) => await pub.publishAsync('pid/a', `old-${i}`, { qos: 2 })))
    await waitFor(() => (rx.raw as RawClient).received.filter(p => p.cmd === 'publish').length === 60, '60 messages')
    for (const p of rx.take()) if (p.cmd === 'publish') rx.see(p)
    expect(rx.held.size).toBe(60)
    // none acknowledged: the session holds 60 ids
    await rx.raw?.disconnect()
    await Promise.all(Array.from({ length: 60 }, async (_, i) => await pub.publishAsync('pid/a', `new-${i}`, { qos: 2 })))

    seedCounter(t, 'pid-held', Math.min(...rx.held.keys()))
    await rx.connect(t, 'pid-held')
    await rx.ackAll(() => rx.delivered.size === 120 && rx.held.size === 0, 'every message, each flow completed')
    expect(rx.reused, 'ids reused while held').toEqual([])
    expect([...rx.delivered.values()].every(n => n === 1), 'each QoS 2 message passed on once').toBe(true)
    await rx.raw?.disconnect()
    await endClient(pub)
  })

  it('shared-subscription deliveries skip the ids the session holds too', async () => {
    t = await startTestBroker()
    const rx = new Receiver()
    await rx.connect(t, 'pid-member')
    rx.raw?.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'own/#', qos: 2 }, { topic: '$share/g/work/#', qos: 1 }] })
    await rx.raw?.next('suback')
    const pub = await connectClient(t.mqttUrl, { clientId: 'pid-member-pub' })
    await Promise.all(Array.from({ length: 30 }, async (_, i) => await pub.publishAsync('own/a', `own-${i}`, { qos: 2 })))
    await waitFor(() => (rx.raw as RawClient).received.filter(p => p.cmd === 'publish').length === 30, '30 messages')
    for (const p of rx.take()) if (p.cmd === 'publish') rx.see(p)
    await rx.raw?.disconnect()

    seedCounter(t, 'pid-member', Math.min(...rx.held.keys()))
    await rx.connect(t, 'pid-member')
    await Promise.all(Array.from({ length: 30 }, async (_, i) => await pub.publishAsync('work/a', `work-${i}`, { qos: 1 })))
    await waitFor(() => (rx.raw as RawClient).received.filter(p => p.cmd === 'publish').length === 60, 'the 30 resent and the 30 shared')
    for (const p of rx.take()) if (p.cmd === 'publish') rx.see(p)
    expect(rx.reused, 'ids reused while held').toEqual([])
    await rx.ackAll(() => rx.delivered.size === 60 && rx.held.size === 0, 'every message, each flow completed')
    await rx.raw?.disconnect()
    await endClient(pub)
  })

  it('churn: hundreds of reconnects with QoS 1/2 left in flight; no id reused while held, every message arrives, QoS 2 once', async () => {
    const seed = Number(process.env.CHURN_SEED ?? 13)
    const rng = new Rng(seed)
    t = await startTestBroker()
    const rx = new Receiver()
    await rx.connect(t, 'churn')
    rx.raw?.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'churn/#', qos: 2 }] })
    await rx.raw?.next('suback')
    await rx.raw?.disconnect()
    const pub = await connectClient(t.mqttUrl, { clientId: 'churn-pub' })
    const qosOf = new Map<string, number>()
    const publish = async (count: number): Promise<void> => {
      await Promise.all(Array.from({ length: count }, async () => {
        const payload = `m${qosOf.size}`
        const qos = rng.chance(0.5) ? 1 : 2
        qosOf.set(payload, qos)
        await pub.publishAsync('churn/x', payload, { qos })
      }))
    }
    const flows = (): number => (rx.raw as RawClient).received.filter(p => p.cmd === 'publish' || p.cmd === 'pubrel').length

    for (let round = 0; round < 300; round++) {
      const context = `seed ${seed}, round ${round}`
      await publish(rng.int(12))
      // what the session owes: one packet per held id (PUBLISH again, or PUBREL) and every message never sent
      let expected = rx.held.size + qosOf.size - rx.delivered.size
      // often the new connection's counter starts on an id the session holds, where a reuse would surely happen
      if (rx.held.size > 0 && rng.chance(0.5)) seedCounter(t, 'churn', rng.pick([...rx.held.keys()]))
      await rx.connect(t, 'churn')
      const live = rng.int(8)
      await publish(live)
      expected += live
      await waitFor(() => flows() >= expected, `${expected} packets (${context})`)
      const pubrels: number[] = []
      const look = (): void => {
        for (const p of rx.take()) {
          if (p.cmd === 'publish') rx.see(p)
          else if (p.cmd === 'pubrel') pubrels.push(p.messageId as number)
        }
      }
      look()
      // acknowledges part of it; the rest stays in flight across the reconnect
      for (const [id, h] of [...rx.held]) {
        if (h.received || !rng.chance(0.5)) continue
        if (h.qos === 1) rx.puback(id)
        else {
          rx.pubrec(id)
          expected++
        }
      }
      await waitFor(() => flows() >= expected, `PUBREL for each PUBREC (${context})`)
      look()
      for (const id of pubrels) if (rng.chance(0.6)) rx.pubcomp(id)
      await rx.raw?.disconnect()
      expect(rx.reused, `ids reused while held (${context})`).toEqual([])
    }

    await rx.connect(t, 'churn')
    await rx.ackAll(() => rx.delivered.size === qosOf.size && rx.held.size === 0, `all ${qosOf.size} messages (seed ${seed})`)
    expect(rx.reused, 'ids reused while held').toEqual([])
    expect([...qosOf.keys()].filter(m => !rx.delivered.has(m)), 'messages that never arrived').toEqual([])
    expect([...qosOf].filter(([m, qos]) => qos === 2 && rx.delivered.get(m) !== 1), 'QoS 2 messages not passed on exactly once').toEqual([])
    await waitFor(() => t?.broker.store.stats().queuedMessages === 0, 'an empty queue')
    await rx.raw?.disconnect()
    await endClient(pub)
  }, 120_000)

  it('resends all of 5,000 unacknowledged messages at a reconnect, then the rest of the queue as they are acknowledged', async () => {
    t = await startTestBroker()
    const rx = new Receiver()
    await rx.connect(t, 'pid-backlog')
    rx.raw?.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bl/#', qos: 1 }] })
    await rx.raw?.next('suback')
    const pub = await connectClient(t.mqttUrl, { clientId: 'bl-pub' })
    const publishAll = async (from: number, count: number): Promise<void> => {
      await Promise.all(Array.from({ length: count }, async (_, i) => await pub.publishAsync('bl/a', String(from + i), { qos: 1 })))
    }
    await publishAll(0, 5000)
    await waitFor(() => (rx.raw as RawClient).received.filter(p => p.cmd === 'publish').length === 5000, '5,000 live messages', 20_000)
    const first = new Map<string, number>()
    for (const p of rx.take()) if (p.cmd === 'publish') first.set(p.payload.toString(), p.messageId as number)
    await rx.raw?.disconnect()
    expect((await t.broker.store.sessionInfo('pid-backlog'))?.inflight).toBe(5000)
    await publishAll(5000, 1000)

    await rx.connect(t, 'pid-backlog')
    const publishes = (): IPublishPacket[] => (rx.raw as RawClient).received.filter((p): p is IPublishPacket => p.cmd === 'publish')
    await waitFor(() => publishes().length >= 5000, 'the 5,000 in flight resent', 20_000)
    const resent = publishes().slice(0, 5000)
    expect(resent.every(p => p.dup), 'each resend has DUP=1').toBe(true)
    expect(resent.map(p => [p.payload.toString(), p.messageId]), 'in order, under the ids they were sent with')
      .toEqual([...first].slice(0, 5000))
    await rx.ackAll(() => rx.delivered.size === 6000 && rx.held.size === 0, 'the rest of the queue', 30_000)
    expect(publishes().map(p => Number(p.payload.toString()))).toEqual(Array.from({ length: 6000 }, (_, i) => i))
    await waitFor(() => t?.broker.store.stats().queuedMessages === 0, 'an empty queue')
    expect(rx.reused).toEqual([])
    await rx.raw?.disconnect()
    await endClient(pub)
  }, 60_000)
})

describe('packet identifiers when all 65,535 are held', () => {
  let t: TestBroker | undefined
  afterEach(async () => { await t?.close() })

  it('a new QoS 1 message waits, never reusing an id, and goes out under the first id the client frees', async () => {
    t = await startTestBroker()
    const raw = await openRaw('tcp', t)
    await raw.connect({ clientId: 'full' })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'full/#', qos: 1 }] })
    await raw.next('suback')
    const publishes = (): IPublishPacket[] => raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish')
    const pub = await connectClient(t.mqttUrl, { clientId: 'full-pub' })
    for (let i = 0; i < 65535; i += 5000) {
      await Promise.all(Array.from({ length: Math.min(5000, 65535 - i) }, async (_, j) => await pub.publishAsync('full/a', String(i + j), { qos: 1 })))
    }
    await waitFor(() => publishes().length === 65535, '65,535 unacknowledged messages', 30_000)
    expect(new Set(publishes().map(p => p.messageId)).size).toBe(65535)

    let acknowledged = false
    const waiting = pub.publishAsync('full/a', 'waits', { qos: 1 }).then(() => { acknowledged = true })
    // a QoS 0 message needs no id and overtakes it: once it is here, the QoS 1 one has had its chance to go out
    const probe = await connectClient(t.mqttUrl, { clientId: 'full-probe' })
    await probe.publishAsync('full/b', 'overtakes', { qos: 0 })
    await raw.next(p => p.cmd === 'publish' && p.payload.toString() === 'overtakes')
    expect(publishes().length, 'nothing but the QoS 0 message while every id is held').toBe(65536)
    expect(acknowledged, 'its publisher waits for it').toBe(false)

    raw.send({ cmd: 'puback', messageId: 12345 })
    const sent = await raw.next<IPublishPacket>(p => p.cmd === 'publish' && p.payload.toString() === 'waits')
    expect(sent.messageId, 'the one id free').toBe(12345)
    await waiting
    await endClient(probe)
    await endClient(pub)
    await raw.disconnect()
  }, 90_000)
})
