import { afterEach, describe, expect, it } from 'vitest'
import type { IPubackPacket, IPubrecPacket } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, connectV5 as v5, endClient, waitFor, type TestClient } from '../helpers/clients.js'
import type { RawClient } from '../helpers/raw-client.js'
import type { Envelope } from '../../src/dead-letter/envelope.js'
import { rawV5, settled } from './mqtt5-support.js'

interface Watcher { client: TestClient, envelopes: () => Array<{ topic: string, envelope: Envelope }> }

async function watchDlq (t: TestBroker): Promise<Watcher> {
  const client = await connectClient(t.mqttUrl, { clientId: `dlq-${Math.random().toString(16).slice(2)}` })
  await client.subscribeAsync('$DLQ/#', { qos: 1 })
  return { client, envelopes: () => client.received.map(m => ({ topic: m.topic, envelope: JSON.parse(m.payload) as Envelope })) }
}

const payloadOf = (e: Envelope): string => Buffer.from(e.payload, 'base64').toString()

/**
 * What MQTT 5 acknowledgements say both ways (docs/protocol.md): a subscriber's refusal dead-letters the message as
 * `rejected` (a shared group tries another member first), a copy too large for its subscriber is dead-lettered as
 * `too-large-for-client`, a refused QoS 2 publish gets a failing PUBREC that ends its flow, and a publish nobody
 * subscribes to gets 0x10 where that is looked up.
 */
describe('MQTT 5 acknowledgements and the dead letters they make', () => {
  const open: Array<{ close: () => Promise<void> }> = []
  const clients: Array<RawClient | TestClient> = []
  afterEach(async () => {
    for (const c of clients.splice(0)) {
      if ('destroy' in c && 'sendRaw' in c) c.destroy()
      else await endClient(c, true)
    }
    for (const b of open.splice(0)) await b.close()
  })
  const broker = async (settings: Record<string, unknown> = {}): Promise<TestBroker> => {
    const t = await startTestBroker(settings)
    open.push(t)
    return t
  }
  const keep = <C extends RawClient | TestClient>(c: C): C => {
    clients.push(c)
    return c
  }

  it('a PUBACK or PUBREC with a reason code ≥ 0x80 dead-letters the message as rejected, with the code and reason string; no PUBREL follows', async () => {
    const t = await broker()
    const w = await watchDlq(t)
    keep(w.client)
    const sub = keep(await rawV5(t, 'refuser', 'rej/#', 2, { receiveMaximum: 1 }))
    const pub = keep(await v5(t.mqttUrl, { clientId: 'rej-pub' }))
    await pub.publishAsync('rej/one', 'first', { qos: 1 })
    await pub.publishAsync('rej/two', 'second', { qos: 2 })
    await pub.publishAsync('rej/three', 'third', { qos: 1 })
    await waitFor(() => sub.publishes().length === 1, 'the first message')
    sub.send({ cmd: 'puback', messageId: sub.publishes()[0].messageId, reasonCode: 0x87, properties: { reasonString: 'not for me' } })
    // the refusal completes the first message: the window of one lets the second through
    await waitFor(() => sub.publishes().length === 2, 'the second message')
    const second = sub.publishes()[1]
    expect(second.qos).toBe(2)
    sub.send({ cmd: 'pubrec', messageId: second.messageId, reasonCode: 0x80 })
    await waitFor(() => sub.publishes().length === 3, 'the third message')
    sub.send({ cmd: 'puback', messageId: sub.publishes()[2].messageId })
    await settled(sub)
    expect(sub.received.filter(p => p.cmd === 'pubrel'), 'a refusing PUBREC ends the flow').toEqual([])
    await waitFor(() => w.envelopes().length === 2, 'two rejected envelopes')
    const [one, two] = w.envelopes()
    expect(one.topic).toBe('$DLQ/rejected/rej/one')
    expect(one.envelope).toMatchObject({ reason: 'rejected', topic: 'rej/one', qos: 1, target: 'refuser' })
    expect(one.envelope.detail).toMatch(/PUBACK reason code 0x87, reason string "not for me"/)
    expect(payloadOf(one.envelope)).toBe('first')
    expect(two.topic).toBe('$DLQ/rejected/rej/two')
    expect(two.envelope).toMatchObject({ reason: 'rejected', qos: 2, target: 'refuser' })
    expect(two.envelope.detail).toMatch(/PUBREC reason code 0x80/)
    expect(payloadOf(two.envelope)).toBe('second')
  })

  it('mqtt.js refusing through customHandleAcks: the refused messages are dead-lettered, the accepted ones delivered', async () => {
    const t = await broker()
    const w = await watchDlq(t)
    keep(w.client)
    const sub = keep(await v5(t.mqttUrl, {
      clientId: 'picky',
      customHandleAcks: (topic, _message, packet, done) => {
        done(topic.endsWith('/bad') ? (packet.qos === 2 ? 0x99 : 0x87) : 0)
      }
    }))
    await sub.subscribeAsync('picky/#', { qos: 2 })
    const pub = keep(await v5(t.mqttUrl, { clientId: 'picky-pub' }))
    await pub.publishAsync('picky/bad', 'no 1', { qos: 1 })
    await pub.publishAsync('picky/good', 'yes 1', { qos: 1 })
    await pub.publishAsync('picky/bad', 'no 2', { qos: 2 })
    await pub.publishAsync('picky/good', 'yes 2', { qos: 2 })
    await waitFor(() => sub.received.length === 2 && w.envelopes().length === 2, 'two deliveries and two dead letters')
    expect(sub.received.map(m => m.payload)).toEqual(['yes 1', 'yes 2'])
    expect(w.envelopes().map(e => [e.topic, payloadOf(e.envelope), e.envelope.target])).toEqual([
      ['$DLQ/rejected/picky/bad', 'no 1', 'picky'],
      ['$DLQ/rejected/picky/bad', 'no 2', 'picky']
    ])
    expect(w.envelopes()[1].envelope.detail).toMatch(/PUBREC reason code 0x99/)
  })

  it('a persistent session: the refused message leaves its queue and is not sent to it again', async () => {
    const t = await broker()
    const w = await watchDlq(t)
    keep(w.client)
    const session = { sessionExpiryInterval: 3600 }
    const sub = await rawV5(t, 'durable-refuser', 'rejd/#', 1, session, false)
    const pub = keep(await v5(t.mqttUrl, { clientId: 'rejd-pub' }))
    await pub.publishAsync('rejd/a', 'refused', { qos: 1 })
    await waitFor(() => sub.publishes().length === 1, 'the message')
    sub.send({ cmd: 'puback', messageId: sub.publishes()[0].messageId, reasonCode: 0x83 })
    await waitFor(() => w.envelopes().length === 1, 'the rejected envelope')
    expect(w.envelopes()[0].envelope).toMatchObject({ reason: 'rejected', target: 'durable-refuser' })
    await sub.disconnect()
    expect((await t.broker.store.sessionInfo('durable-refuser'))?.queued).toBe(0)
    const again = keep(await rawV5(t, 'durable-refuser', 'rejd/#', 1, session, false))
    await pub.publishAsync('rejd/a', 'fence', { qos: 1 })
    await waitFor(() => again.publishes().length >= 1, 'the fence')
    await settled(again)
    expect(again.payloads()).toEqual(['fence'])
  })

  it('a shared group: a refused message goes to another member, counted as a rejection; refused on its last delivery it is dead-lettered as rejected', async () => {
    const t = await broker({ 'sharedSubscriptions.redeliveryBackoff.initialMs': 0, 'sharedSubscriptions.maxDeliveries': 2 })
    const w = await watchDlq(t)
    keep(w.client)
    const a = keep(await rawV5(t, 'member-a', '$share/g/work/#', 1))
    const pub = keep(await v5(t.mqttUrl, { clientId: 'work-pub' }))
    await pub.publishAsync('work/1', 'job', { qos: 1 })
    await waitFor(() => a.publishes().length === 1, 'the job at a')
    const b = keep(await v5(t.mqttUrl, { clientId: 'member-b' }))
    await b.subscribeAsync('$share/g/work/#', { qos: 1 })
    a.send({ cmd: 'puback', messageId: a.publishes()[0].messageId, reasonCode: 0x80, properties: { reasonString: 'busy' } })
    await waitFor(() => b.received.length === 1, 'the job at b')
    expect(b.received[0].payload).toBe('job')
    const group = async (): Promise<{ rejections: number, acknowledged: number, deadLettered: number }> => {
      const body = await (await fetch(`${t.adminUrl}/api/shared`)).json() as { items: Array<{ rejections: number, acknowledged: number, deadLettered: number }> }
      return body.items[0]
    }
    await waitFor(async () => (await group()).acknowledged === 1, 'b acknowledged it')
    expect(await group()).toMatchObject({ rejections: 1, deadLettered: 0 })
    await endClient(b, true)

    // only a is left, and it refuses every delivery: after maxDeliveries (2) the message is dead-lettered
    await pub.publishAsync('work/2', 'unwanted', { qos: 1 })
    for (let i = 1; i <= 2; i++) {
      await waitFor(() => a.payloads().filter(p => p === 'unwanted').length === i, `delivery ${i}`)
      const p = a.publishes().filter(p => p.payload.toString() === 'unwanted')[i - 1]
      a.send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0x97, properties: { reasonString: 'quota' } })
    }
    await waitFor(() => w.envelopes().length === 1, 'the rejected envelope')
    const { topic, envelope } = w.envelopes()[0]
    expect(topic).toBe('$DLQ/rejected/work/2')
    expect(envelope).toMatchObject({ reason: 'rejected', attempts: 2, target: '$share/g/work/#' })
    expect(envelope.detail).toMatch(/PUBACK reason code 0x97, reason string "quota" from member-a/)
    expect(await group()).toMatchObject({ rejections: 3, deadLettered: 1 })
  })

  it('a shared group with sharedSubscriptions.redispatchRejected false [MQTT-4.8.2-6]: a refused message is dead-lettered as rejected at once and never offered to another member', async () => {
    const t = await broker({ 'sharedSubscriptions.redeliveryBackoff.initialMs': 0, 'sharedSubscriptions.redispatchRejected': false })
    const w = await watchDlq(t)
    keep(w.client)
    const a = keep(await rawV5(t, 'strict-a', '$share/g/strict/#', 1))
    const pub = keep(await v5(t.mqttUrl, { clientId: 'strict-pub' }))
    await pub.publishAsync('strict/1', 'job', { qos: 1 })
    await waitFor(() => a.publishes().length === 1, 'the job at a')
    const b = keep(await v5(t.mqttUrl, { clientId: 'strict-b' }))
    await b.subscribeAsync('$share/g/strict/#', { qos: 1 })
    a.send({ cmd: 'puback', messageId: a.publishes()[0].messageId, reasonCode: 0x80, properties: { reasonString: 'no' } })
    await waitFor(() => w.envelopes().length === 1, 'the rejected envelope')
    const { topic, envelope } = w.envelopes()[0]
    expect(topic).toBe('$DLQ/rejected/strict/1')
    expect(envelope).toMatchObject({ reason: 'rejected', attempts: 1, target: '$share/g/strict/#' })
    expect(envelope.detail).toMatch(/PUBACK reason code 0x80, reason string "no" from strict-a/)
    // a redelivery would have been written to b before the dead letter was published: a fence through b shows none
    await b.subscribeAsync('strict-fence', { qos: 1 })
    await pub.publishAsync('strict-fence', 'fence', { qos: 1 })
    await waitFor(() => b.received.some(m => m.topic === 'strict-fence'), 'the fence at b')
    await settled(a)
    expect([...a.payloads(), ...b.received.map(m => m.payload)].filter(p => p === 'job')).toEqual(['job'])
    // the group goes on: the next message is delivered to a member
    await pub.publishAsync('strict/2', 'next', { qos: 1 })
    await waitFor(() => [...a.payloads(), ...b.received.map(m => m.payload)].includes('next'), 'the next message')
  })

  it('too-large-for-client: a copy over the subscriber\'s Maximum Packet Size is dead-lettered once, live, queued and retained; the next message flows', async () => {
    const t = await broker()
    const w = await watchDlq(t)
    keep(w.client)
    const session = { sessionExpiryInterval: 3600, maximumPacketSize: 200 }
    const sub = await rawV5(t, 'small', 'size/#', 1, session, false)
    const pub = keep(await v5(t.mqttUrl, { clientId: 'size-pub' }))
    const big = 'x'.repeat(300)
    await pub.publishAsync('size/live', big, { qos: 1 })
    await pub.publishAsync('size/live', 'small live', { qos: 1 })
    await waitFor(() => sub.publishes().length === 1, 'the small live message')
    sub.send({ cmd: 'puback', messageId: sub.publishes()[0].messageId })
    await sub.disconnect()
    await pub.publishAsync('size/queued', big, { qos: 1 })
    await pub.publishAsync('size/queued', 'small queued', { qos: 1 })
    const again = keep(await rawV5(t, 'small', 'size/#', 1, session, false))
    await waitFor(() => again.publishes().length === 1, 'the small queued message')
    expect(again.payloads()).toEqual(['small queued'])
    again.send({ cmd: 'puback', messageId: again.publishes()[0].messageId })
    await pub.publishAsync('retained/big', big, { qos: 1, retain: true })
    again.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'retained/#', qos: 1 }] })
    await again.next('suback')
    await waitFor(() => w.envelopes().length === 3, 'three too-large-for-client envelopes')
    await settled(again)
    expect(again.payloads()).toEqual(['small queued'])
    expect(w.envelopes().map(e => e.topic)).toEqual(['$DLQ/too-large-for-client/size/live', '$DLQ/too-large-for-client/size/queued', '$DLQ/too-large-for-client/retained/big'])
    for (const { envelope } of w.envelopes()) {
      expect(envelope).toMatchObject({ reason: 'too-large-for-client', target: 'small', retain: false })
      expect(envelope.detail).toMatch(/larger than the subscriber's Maximum Packet Size \(200 bytes\)/)
      expect(payloadOf(envelope)).toBe(big)
    }
    await waitFor(async () => (await t.broker.store.sessionInfo('small'))?.queued === 0, 'an empty queue')
  })

  it('a shared copy too large for one member goes to another member, not to the dead-letter topic', async () => {
    const t = await broker({ 'sharedSubscriptions.redeliveryBackoff.initialMs': 0 })
    const w = await watchDlq(t)
    keep(w.client)
    const small = keep(await rawV5(t, 'small-member', '$share/g/big/#', 1, { maximumPacketSize: 100 }))
    const large = keep(await v5(t.mqttUrl, { clientId: 'large-member' }))
    await large.subscribeAsync('$share/g/big/#', { qos: 1 })
    const pub = keep(await v5(t.mqttUrl, { clientId: 'big-pub' }))
    for (let i = 0; i < 4; i++) await pub.publishAsync('big/a', `${i}:${'y'.repeat(200)}`, { qos: 1 })
    await waitFor(() => large.received.length === 4, 'every large message at the member that accepts it')
    await settled(small)
    expect(small.publishes()).toEqual([])
    expect(w.envelopes()).toEqual([])
  })

  it('a refused QoS 2 publish gets a failing PUBREC that ends its flow: the id is free at once, and a PUBREL for it gets PUBCOMP 0x92', async () => {
    const t = await broker({ 'mqtt.maxInflightInboundMessages': 2 })
    const sub = keep(await v5(t.mqttUrl, { clientId: 'q2-sub' }))
    await sub.subscribeAsync('ok/#', { qos: 2 })
    const pub = keep(await rawV5(t, 'q2-pub'))
    pub.send({ cmd: 'publish', topic: '$culex/nope', payload: Buffer.from('refused'), qos: 2, messageId: 7, retain: false, dup: false })
    const refused = await pub.next<IPubrecPacket>('pubrec')
    expect(refused.messageId).toBe(7)
    expect(refused.reasonCode).toBe(0x90)
    expect(refused.properties?.reasonString).toMatch(/^reserved-topic: /)
    // the same id carries a new message at once, without a PUBREL: it is not taken for a duplicate
    pub.send({ cmd: 'publish', topic: 'ok/a', payload: Buffer.from('accepted'), qos: 2, messageId: 7, retain: false, dup: false })
    const accepted = await pub.next<IPubrecPacket>('pubrec')
    expect(accepted.reasonCode).toBe(0)
    pub.send({ cmd: 'pubrel', messageId: 7 })
    expect((await pub.next('pubcomp') as { reasonCode?: number }).reasonCode).toBe(0)
    await waitFor(() => sub.received.length === 1, 'the accepted message')
    expect(sub.received[0].payload).toBe('accepted')
    // refused ones do not count against mqtt.maxInflightInboundMessages (2): the connection stays open
    for (const id of [11, 12, 13]) {
      pub.send({ cmd: 'publish', topic: '$culex/nope', payload: Buffer.from('refused'), qos: 2, messageId: id, retain: false, dup: false })
      expect((await pub.next<IPubrecPacket>('pubrec')).reasonCode).toBe(0x90)
    }
    pub.send({ cmd: 'pubrel', messageId: 11 })
    expect((await pub.next('pubcomp') as { reasonCode?: number }).reasonCode).toBe(0x92)
    expect(pub.isClosed).toBe(false)
  })

  it('PUBACK and PUBREC 0x10 (no matching subscribers) for a v5 publish nobody subscribes to, with deadLetter.noSubscribers', async () => {
    const t = await broker({ 'deadLetter.noSubscribers': true })
    const pub = keep(await rawV5(t, 'lonely'))
    pub.send({ cmd: 'publish', topic: 'nobody/here', payload: Buffer.from('hello?'), qos: 1, messageId: 1, retain: false, dup: false })
    const puback = await pub.next<IPubackPacket>('puback')
    expect(puback.reasonCode).toBe(0x10)
    expect(puback.properties?.reasonString).toMatch(/^no-subscribers/)
    pub.send({ cmd: 'publish', topic: 'nobody/here', payload: Buffer.from('hello?'), qos: 2, messageId: 2, retain: false, dup: false })
    expect((await pub.next<IPubrecPacket>('pubrec')).reasonCode).toBe(0x10)
    // 0x10 is a success: the QoS 2 flow goes on
    pub.send({ cmd: 'pubrel', messageId: 2 })
    expect((await pub.next('pubcomp') as { reasonCode?: number }).reasonCode).toBe(0)
    const sub = keep(await v5(t.mqttUrl, { clientId: 'listener' }))
    await sub.subscribeAsync('nobody/#', { qos: 1 })
    pub.send({ cmd: 'publish', topic: 'nobody/here', payload: Buffer.from('now?'), qos: 1, messageId: 3, retain: false, dup: false })
    expect((await pub.next<IPubackPacket>('puback')).reasonCode).toBe(0)
  })
})
