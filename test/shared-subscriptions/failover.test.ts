import v8 from 'node:v8'
import vm from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import type { IPublishPacket } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, sleep, waitFor } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'
import { endAll, members, payloads, publishMany, silentMember, waitTotal } from './support.js'

const numbers = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i))
const sorted = (xs: string[]): string[] => [...new Set(xs)].sort((a, b) => Number(a) - Number(b))

describe('shared subscriptions: failover and redelivery', () => {
  let t: TestBroker | undefined

  afterEach(async () => {
    await t?.close()
    t = undefined
  })

  it('moves every unacknowledged message of a member whose connection dies mid-stream to the others at once', async () => {
    t = await startTestBroker({ 'sharedSubscriptions.ackTimeoutMs': 0 })
    const silent = await silentMember(t.mqttUrl, 'dies', '$share/k/kill/#')
    const live = await members(t.mqttUrl, 2, '$share/k/kill/#', 1, 'lives')
    const pub = await connectClient(t.mqttUrl, { clientId: 'k-pub' })
    const n = 3000
    const publishing = publishMany(pub, 'kill/x', n, 1, 100)
    await waitFor(() => silent.publishes().length >= 200, 'the silent member to hold 200 messages', 10_000)
    silent.destroy()
    await publishing
    await waitTotal(live, n, 'the live members', 15_000)
    const held = silent.publishes().map(p => p.payload.toString())
    expect(held.length).toBeGreaterThanOrEqual(200)
    // Nothing lost: the live members together have every message, including all the dead member held.
    expect(sorted(payloads(live))).toEqual(numbers(n))
    const redelivered = live.flatMap(c => c.received.filter(r => held.includes(r.payload)))
    expect(redelivered.length).toBeGreaterThanOrEqual(held.length)
    expect(redelivered.every(r => r.dup)).toBe(true)
    const moved = t.logs.filter(l => l.msg === 'shared messages moved to another member' && l.clientId === 'dies')
    expect(moved.map(l => l.reason)).toEqual(['disconnect'])
    // The broker had written more to the socket than the client read before it died: those moved too.
    expect(moved[0].count).toBeGreaterThanOrEqual(held.length)
    await endAll([...live, pub])
  }, 30_000)

  it('moves the messages of a member that stops acknowledging once ackTimeoutMs has passed', async () => {
    t = await startTestBroker({ 'sharedSubscriptions.ackTimeoutMs': 600, 'sharedSubscriptions.redeliveryBackoff.initialMs': 0 })
    const silent = await silentMember(t.mqttUrl, 'stuck', '$share/a/ack/#')
    const [live] = await members(t.mqttUrl, 1, '$share/a/ack/#', 1, 'acks')
    const pub = await connectClient(t.mqttUrl, { clientId: 'a-pub' })
    const started = Date.now()
    await publishMany(pub, 'ack/x', 20, 1)
    await waitFor(() => silent.publishes().length === 10 && live.received.length === 10, 'half each')
    await sleep(150)
    expect(live.received.length).toBe(10)
    await waitFor(() => live.received.length === 20, 'the stuck member\'s half', 5000)
    expect(Date.now() - started).toBeGreaterThanOrEqual(600)
    expect(sorted(live.received.map(r => r.payload))).toEqual(numbers(20))
    expect(live.received.slice(10).every(r => r.dup)).toBe(true)
    expect(silent.isClosed).toBe(false)
    expect(t.logs.some(l => l.msg === 'shared messages moved to another member' && l.clientId === 'stuck' && l.reason === 'ack-timeout' && l.count === 10)).toBe(true)
    silent.destroy()
    await endAll([live, pub])
  })

  it('gives up a message nobody acknowledges after maxDeliveries attempts (dead-letter callback)', async () => {
    t = await startTestBroker({ 'sharedSubscriptions.ackTimeoutMs': 200, 'sharedSubscriptions.maxDeliveries': 3, 'sharedSubscriptions.redeliveryBackoff.initialMs': 0 })
    const s1 = await silentMember(t.mqttUrl, 'poison-1', '$share/p/poison')
    const s2 = await silentMember(t.mqttUrl, 'poison-2', '$share/p/poison')
    const pub = await connectClient(t.mqttUrl, { clientId: 'p-pub' })
    await pub.publishAsync('poison', 'bad', { qos: 1 })
    const deadLettered = (): Array<Record<string, unknown>> => t?.logs.filter(l => l.msg === 'shared message dead-lettered') ?? []
    await waitFor(() => deadLettered().length === 1, 'the dead letter', 5000)
    await sleep(500)
    const copies = [...s1.publishes(), ...s2.publishes()]
    expect(copies.length).toBe(3)
    expect(copies.map(p => p.payload.toString())).toEqual(['bad', 'bad', 'bad'])
    expect(s1.publishes().length).toBe(2)
    expect(s2.publishes().length).toBe(1)
    expect(deadLettered()).toEqual([expect.objectContaining({ reason: 'max-deliveries', attempts: 3, share: '$share/p/poison', topic: 'poison' })])
    const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text()
    expect(metrics).toContain('culex_dead_letters_total{reason="max-deliveries"} 1')
    expect(metrics).toMatch(/culex_shared_messages_total\{event="redelivered"\} 2/)
    s1.destroy()
    s2.destroy()
    await endAll([pub])
  })

  it('holds at most maxInflightPerMember unacknowledged messages at one member; the rest go to others', async () => {
    t = await startTestBroker({ 'sharedSubscriptions.maxInflightPerMember': 5, 'sharedSubscriptions.ackTimeoutMs': 0 })
    const slow = await silentMember(t.mqttUrl, 'capped', '$share/c/cap')
    const [fast] = await members(t.mqttUrl, 1, '$share/c/cap', 1, 'uncapped')
    const pub = await connectClient(t.mqttUrl, { clientId: 'c-pub' })
    await publishMany(pub, 'cap', 100, 1, 10)
    await waitTotal([fast], 95, 'the other member')
    await sleep(100)
    expect(slow.publishes().length).toBe(5)
    expect(fast.received.length).toBe(95)
    slow.destroy()
    await waitTotal([fast], 100, 'the five the capped member held')
    await endAll([fast, pub])
  })

  it('never sends a QoS 2 message a member has PUBREC\'d to another member', async () => {
    t = await startTestBroker({ 'sharedSubscriptions.ackTimeoutMs': 300, 'sharedSubscriptions.redeliveryBackoff.initialMs': 0 })
    const r = await silentMember(t.mqttUrl, 'rec', '$share/q2/two', 2)
    const pub = await connectClient(t.mqttUrl, { clientId: 'q2-pub' })
    await pub.publishAsync('two', 'first', { qos: 2 })
    await pub.publishAsync('two', 'second', { qos: 2 })
    await waitFor(() => r.publishes().length === 2, 'both at the only member')
    const [first] = r.publishes() as IPublishPacket[]
    r.send({ cmd: 'pubrec', messageId: first.messageId })
    await r.next('pubrel')
    const [other] = await members(t.mqttUrl, 1, '$share/q2/two', 2, 'q2-other')
    await sleep(700)
    // "second" was not PUBREC'd: it timed out and moved; "first" stays with the member that received it.
    expect(other.received.map(m => m.payload)).toEqual(['second'])
    r.destroy()
    await sleep(300)
    expect(other.received.map(m => m.payload)).toEqual(['second'])
    await endAll([other, pub])
  })

  it('completes QoS 2 with a persistent member (the PUBREL state is the group\'s, the session stays connected)', async () => {
    t = await startTestBroker()
    const r = await silentMember(t.mqttUrl, 'rec-p', '$share/q2p/two', 2, false)
    const pub = await connectClient(t.mqttUrl, { clientId: 'q2p-pub' })
    await pub.publishAsync('two', 'exactly-once', { qos: 2 })
    const [packet] = await waitFor(() => r.publishes().length === 1, 'the message').then(() => r.publishes())
    expect(packet).toMatchObject({ qos: 2, dup: false })
    r.send({ cmd: 'pubrec', messageId: packet.messageId })
    const pubrel = await r.next('pubrel')
    expect(pubrel).toMatchObject({ messageId: packet.messageId })
    r.send({ cmd: 'pubcomp', messageId: packet.messageId })
    await sleep(100)
    expect(r.isClosed).toBe(false)
    expect((await t.broker.store.sessionInfo('rec-p'))?.queued).toBe(0)
    expect(t.broker.store.groupQueues.count).toBe(0)
    r.destroy()
    await endAll([pub])
  })

  it('moves what an old connection held when the same client id takes over, to the new connection', async () => {
    t = await startTestBroker({ 'sharedSubscriptions.ackTimeoutMs': 0 })
    const old = await silentMember(t.mqttUrl, 'taken', '$share/to/over', 1, false)
    const pub = await connectClient(t.mqttUrl, { clientId: 'to-pub' })
    await publishMany(pub, 'over', 5, 1)
    await waitFor(() => old.publishes().length === 5, 'five at the old connection')
    const fresh = await connectClient(t.mqttUrl, { clientId: 'taken', clean: false })
    await waitFor(() => fresh.received.length === 5, 'the five at the new connection')
    expect(fresh.received.map(r => [r.payload, r.dup])).toEqual([['0', true], ['1', true], ['2', true], ['3', true], ['4', true]])
    expect(await old.waitClosed()).toBe(true)
    await publishMany(pub, 'over', 2, 1)
    await waitFor(() => fresh.received.length === 7, 'two more')
    await endAll([fresh, pub])
  })

  it('keeps no member that closed while its $share subscription was being set up alive', async () => {
    t = await startTestBroker()
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    const closed: Array<WeakRef<object>> = []
    t.broker.aedes.on('clientDisconnect', client => closed.push(new WeakRef(client)))
    let seed = 21
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    const n = 20
    for (let i = 0; i < n; i++) {
      const raw = await openRaw('tcp', { mqttUrl: t.mqttUrl, wsUrl: '' })
      await raw.connect({ clientId: `brief${i}`, clean: false })
      // A group of its own, so no later SUBSCRIBE of the same filter tidies up after it.
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `$share/brief${i}/t/#`, qos: 1 }] })
      // Gone at once or a little later: while the subscription is authorized, stored, or after it is in place.
      await sleep(Math.floor(random() * 3))
      raw.destroy()
    }
    await waitFor(() => closed.length === n, `${n} members closed`)
    await waitFor(() => {
      gc()
      return closed.every(ref => ref.deref() === undefined)
    }, 'every closed member garbage-collected')
  })
})
