import { describe, expect, it } from 'vitest'
import type { IPubackPacket } from 'mqtt-packet'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { connectClient, connectV5 as v5, endClient, waitFor } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'
import { writePasswordFile } from '../auth/support.js'
import { PACKET_OVERHEAD_BYTES } from '../../src/limits/connection-guard.js'

/**
 * What an MQTT 5 client and the broker tell each other (docs/protocol.md, "MQTT 5"): the CONNACK's reason code and
 * properties, the keepalive the broker gives, refusals, the client's Maximum Packet Size and No Local honoured, and
 * the protocol errors that close the connection.
 */
describe('MQTT 5 connections and their rules', () => {
  let t: TestBroker
  const track = brokerPerTest(started => { t = started })

  it('gets CONNACK 0x00 with properties that say what the broker does, and an assigned identifier for an empty one', async () => {
    const named = track(await v5(t.mqttUrl, { clientId: 'named' }))
    expect(named.connack.reasonCode).toBe(0)
    expect(named.connack.properties).toEqual({
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      sharedSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      topicAliasMaximum: 10,
      receiveMaximum: 1000,
      maximumPacketSize: 1_048_576 + PACKET_OVERHEAD_BYTES + 2
    })
    const anonymous = track(await v5(t.mqttUrl, { clientId: '' }))
    const assigned = anonymous.connack.properties?.assignedClientIdentifier
    expect(typeof assigned).toBe('string')
    const connected = (t.broker.aedes as unknown as { clients: Record<string, { version: number }> }).clients
    expect(Object.keys(connected)).toContain(assigned)
    // the admin API shows each client's protocol version
    const info = await (await fetch(`${t.adminUrl}/api/clients/named`)).json() as { protocolVersion: number }
    expect(info.protocolVersion).toBe(5)
  })

  it('refuses a wrong password with CONNACK reason code 0x86', async () => {
    const file = await writePasswordFile(path.join(t.dataDir, 'passwords'), { alice: 'secret' })
    const secured = await startTestBroker({ 'auth.passwordFile': file, 'auth.failedLoginDelayMs': 0 })
    try {
      const refused = await v5(secured.mqttUrl, { clientId: 'intruder', username: 'alice', password: 'wrong' }).then(() => undefined, (err: { code?: number }) => err.code)
      expect(refused).toBe(0x86)
      const alice = await v5(secured.mqttUrl, { clientId: 'alice', username: 'alice', password: 'secret' })
      expect(alice.connack.reasonCode).toBe(0)
      await endClient(alice)
    } finally {
      await secured.close()
    }
  })

  it('gives a client whose keepalive is over limits.maxKeepaliveSeconds the maximum (Server Keep Alive) instead of refusing it', async () => {
    const limited = await startTestBroker({ 'limits.maxKeepaliveSeconds': 30 })
    try {
      const c = await v5(limited.mqttUrl, { clientId: 'sleepy', keepalive: 120 })
      expect(c.connack.reasonCode).toBe(0)
      expect(c.connack.properties?.serverKeepAlive).toBe(30)
      await endClient(c)
      const within = await v5(limited.mqttUrl, { clientId: 'awake', keepalive: 20 })
      expect(within.connack.properties?.serverKeepAlive).toBeUndefined()
      await endClient(within)
      // an MQTT 3.1.1 client cannot be told: it is refused as before
      const refused = await connectClient(limited.mqttUrl, { clientId: 'sleepy311', keepalive: 120 }).then(() => undefined, (err: { code?: number }) => err.code)
      expect(refused).toBe(2)
    } finally {
      await limited.close()
    }
  })

  it('refuses a CONNECT that asks for enhanced authentication with 0x8C (bad authentication method)', async () => {
    const raw = await openRaw('tcp', t, { version: 5 })
    const connack = await raw.connect({ clientId: 'scram', protocolVersion: 5, properties: { authenticationMethod: 'SCRAM-SHA-256' } })
    expect(connack.reasonCode).toBe(0x8C)
    expect(await raw.waitClosed(5000)).toBe(true)
  })

  it('never sends a client a packet over its Maximum Packet Size: the message is dropped for it, live and from its queue, as if delivered', async () => {
    const session = { clientId: 'small', clean: false, properties: { sessionExpiryInterval: 3600, maximumPacketSize: 200 } }
    const sub = await v5(t.mqttUrl, session)
    await sub.subscribeAsync('size/#', { qos: 1 })
    const pub = track(await v5(t.mqttUrl, { clientId: 'size-pub' }))
    const big = 'x'.repeat(300)
    await pub.publishAsync('size/live', 'small 1', { qos: 1 })
    await pub.publishAsync('size/live', big, { qos: 1 })
    await pub.publishAsync('size/live', big, { qos: 0 })
    // fits without properties, not with them
    await pub.publishAsync('size/live', 'y'.repeat(150), { qos: 1, properties: { userProperties: { padding: 'z'.repeat(60) } } })
    await pub.publishAsync('size/live', 'small 2', { qos: 1 })
    await waitFor(() => sub.received.some(m => m.payload === 'small 2'), 'the second small message')
    expect(sub.received.map(m => m.payload)).toEqual(['small 1', 'small 2'])
    expect(sub.connected).toBe(true)
    await endClient(sub)

    await pub.publishAsync('size/queued', 'queued 1', { qos: 1 })
    await pub.publishAsync('size/queued', big, { qos: 1 })
    await pub.publishAsync('size/queued', 'queued 2', { qos: 1 })
    const again = await v5(t.mqttUrl, session)
    await waitFor(() => again.received.length >= 2, 'the two small queued messages')
    await pub.publishAsync('size/queued', 'fence', { qos: 1 })
    await waitFor(() => again.received.some(m => m.payload === 'fence'), 'the fence')
    expect(again.received.map(m => m.payload)).toEqual(['queued 1', 'queued 2', 'fence'])
    await endClient(again)
    // nothing was left in the queue to be sent later
    expect((await t.broker.store.sessionInfo('small'))?.queued).toBe(0)
  })

  it('No Local: a client does not get its own messages back through a No Local subscription, others do', async () => {
    const self = track(await v5(t.mqttUrl, { clientId: 'self' }))
    await self.subscribeAsync('nl/#', { qos: 2, nl: true })
    const other = track(await v5(t.mqttUrl, { clientId: 'other' }))
    await other.subscribeAsync('nl/#', { qos: 2 })
    for (const qos of [0, 1, 2] as const) await self.publishAsync(`nl/own/q${qos}`, `own ${qos}`, { qos })
    await other.publishAsync('nl/fence', 'from other', { qos: 1 })
    await waitFor(() => self.received.some(m => m.payload === 'from other') && other.received.length >= 4, 'the fence at both')
    expect(self.received.map(m => m.payload)).toEqual(['from other'])
    expect(other.received.map(m => m.payload)).toEqual(['own 0', 'own 1', 'own 2', 'from other'])

    // another, overlapping subscription without No Local delivers the client's own message, once, at its QoS
    await self.subscribeAsync('nl/own/+', { qos: 1 })
    await self.publishAsync('nl/own/again', 'own again', { qos: 2 })
    await other.publishAsync('nl/fence', 'second fence', { qos: 1 })
    await waitFor(() => self.received.some(m => m.payload === 'second fence'), 'the second fence')
    expect(self.received.map(m => [m.payload, m.qos])).toEqual([['from other', 1], ['own again', 1], ['second fence', 1]])
  })

  it('No Local on a persistent session: the own messages are not queued for it either', async () => {
    const session = { clientId: 'self-durable', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const self = await v5(t.mqttUrl, session)
    await self.subscribeAsync('nld/#', { qos: 1, nl: true })
    for (let i = 0; i < 5; i++) await self.publishAsync('nld/own', `own ${i}`, { qos: 1 })
    const other = track(await v5(t.mqttUrl, { clientId: 'nld-other' }))
    await other.publishAsync('nld/fence', 'fence', { qos: 1 })
    await waitFor(() => self.received.length >= 1, 'the fence')
    expect(self.received.map(m => m.payload)).toEqual(['fence'])
    await endClient(self)
    const again = track(await v5(t.mqttUrl, session))
    expect(again.sessionPresent).toBe(true)
    await other.publishAsync('nld/fence', 'second fence', { qos: 1 })
    await waitFor(() => again.received.length >= 1, 'the second fence')
    expect(again.received.map(m => m.payload)).toEqual(['second fence'])
    expect((await t.broker.store.sessionInfo('self-durable'))?.queued).toBe(0)
  })

  it('answers a refused QoS 1 publish with its reason code and a Reason String; it is still dead-lettered', async () => {
    const small = await startTestBroker({ 'limits.maxPayloadBytes': 100 })
    try {
      const dlq = await connectClient(small.mqttUrl, { clientId: 'dlq-watcher' })
      await dlq.subscribeAsync('$DLQ/#', { qos: 1 })
      const raw = await openRaw('tcp', small, { version: 5 })
      expect((await raw.connect({ clientId: 'refused-pub', protocolVersion: 5 })).reasonCode).toBe(0)
      raw.send({ cmd: 'publish', topic: '$SYS/mine', payload: Buffer.from('x'), qos: 1, messageId: 7, dup: false, retain: false })
      raw.send({ cmd: 'publish', topic: 'big/one', payload: Buffer.alloc(200), qos: 1, messageId: 8, dup: false, retain: false })
      raw.send({ cmd: 'publish', topic: 'fine/one', payload: Buffer.from('ok'), qos: 1, messageId: 9, dup: false, retain: false })
      const acks = await Promise.all([7, 8, 9].map(async id => await raw.next<IPubackPacket>(p => p.cmd === 'puback' && p.messageId === id)))
      expect(acks.map(a => a.reasonCode ?? 0)).toEqual([0x90, 0x97, 0x00])
      expect(acks[0].properties?.reasonString).toMatch(/^reserved-topic: /)
      expect(acks[1].properties?.reasonString).toMatch(/^too-large: limits.maxPayloadBytes/)
      expect(acks[2].properties).toBeUndefined()
      await waitFor(() => dlq.received.length >= 1, 'the dead letter of the too-large message')
      expect(dlq.received[0].topic).toBe('$DLQ/too-large/big/one')

      // no Reason String for a client that asked for no problem information [MQTT-3.1.2-29]
      const quiet = await openRaw('tcp', small, { version: 5 })
      await quiet.connect({ clientId: 'quiet-pub', protocolVersion: 5, properties: { requestProblemInformation: false } })
      quiet.send({ cmd: 'publish', topic: '$SYS/mine', payload: Buffer.from('x'), qos: 1, messageId: 3, dup: false, retain: false })
      const ack = await quiet.next<IPubackPacket>('puback')
      expect([ack.reasonCode, ack.properties]).toEqual([0x90, undefined])
      raw.destroy()
      quiet.destroy()
      await endClient(dlq)
    } finally {
      await small.close()
    }
  })

  it('answers a QoS 1 publish the ACL refuses with 0x87 (not authorized)', async () => {
    const passwd = await writePasswordFile(path.join(t.dataDir, 'passwd'), { alice: 'a' })
    const aclFile = path.join(t.dataDir, 'acl.conf')
    await writeFile(aclFile, 'user alice\ntopic write allowed/#\n')
    const secured = await startTestBroker({ 'auth.passwordFile': passwd, 'auth.aclFile': aclFile, 'auth.watchFiles': false })
    try {
      const alice = await v5(secured.mqttUrl, { clientId: 'alice', username: 'alice', password: 'a' })
      const refused = await alice.publishAsync('forbidden/x', 'no', { qos: 1 }).then(() => undefined, (err: { code?: number }) => err.code)
      expect(refused).toBe(0x87)
      await alice.publishAsync('allowed/x', 'yes', { qos: 1 })
      await endClient(alice)
    } finally {
      await secured.close()
    }
  })

  it('tells a v5 client why the server closes its connection: DISCONNECT 0x8E on take-over, 0x8D on keepalive timeout', async () => {
    const first = track(await v5(t.mqttUrl, { clientId: 'taken' }))
    const told: Array<number | undefined> = []
    first.on('disconnect', packet => told.push(packet.reasonCode))
    track(await v5(t.mqttUrl, { clientId: 'taken' }))
    await waitFor(() => told.length > 0, 'DISCONNECT at the client taken over')
    expect(told).toEqual([0x8E])

    const silent = await openRaw('tcp', t, { version: 5 })
    await silent.connect({ clientId: 'silent', protocolVersion: 5, keepalive: 1 })
    expect(await silent.waitClosed(5000)).toBe(true)
    expect(silent.received.map(p => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual([['connack', 0], ['disconnect', 0x8D]])

    // an MQTT 3.1.1 client has no server DISCONNECT: taken over, it is just closed
    const old = await connectClient(t.mqttUrl, { clientId: 'taken311' })
    const packets: string[] = []
    old.on('packetreceive', p => packets.push(p.cmd))
    let closed = false
    old.once('close', () => { closed = true })
    track(await connectClient(t.mqttUrl, { clientId: 'taken311' }))
    await waitFor(() => closed, 'the 3.1.1 client taken over closed')
    expect(packets).toEqual([])
    track(old)
  })

  it('sends DISCONNECT 0x98 (administrative action) to a v5 client the admin API disconnects', async () => {
    const c = track(await v5(t.mqttUrl, { clientId: 'kicked' }))
    const told: Array<number | undefined> = []
    c.on('disconnect', packet => told.push(packet.reasonCode))
    const res = await fetch(`${t.adminUrl}/api/clients/kicked`, { method: 'DELETE' })
    expect(res.status).toBe(200)
    await waitFor(() => told.length > 0, 'DISCONNECT at the kicked client')
    expect(told).toEqual([0x98])
  })

  it('sends DISCONNECT 0x8B (server shutting down) to v5 clients when the broker stops', async () => {
    const own = await startTestBroker()
    const c = track(await v5(own.mqttUrl, { clientId: 'bye' }))
    const told: Array<number | undefined> = []
    c.on('disconnect', packet => told.push(packet.reasonCode))
    await own.close()
    await waitFor(() => told.length > 0, 'DISCONNECT at shutdown')
    expect(told).toEqual([0x8B])
  })

  it('closes the connection of a client that asks for No Local on a shared subscription [MQTT-3.8.3-4]', async () => {
    const raw = await openRaw('tcp', t, { version: 5 })
    expect((await raw.connect({ clientId: 'nl-share', protocolVersion: 5 })).reasonCode).toBe(0)
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/jobs', qos: 1, nl: true, rap: false, rh: 0 }] })
    expect(await raw.waitClosed(5000)).toBe(true)
    // no SUBACK: a DISCONNECT that says why
    expect(raw.received.map(p => [p.cmd, (p as { reasonCode?: number }).reasonCode])).toEqual([['connack', 0], ['disconnect', 0x82]])
  })
})
