import mqttPacket, { type IConnackPacket, type IPublishPacket } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'
import { connectBytes, openRaw, type RawClient } from '../helpers/raw-client.js'
import { delta, scrape, value } from './prom.js'

/**
 * /metrics against a real broker: traffic is driven with mqtt.js and a byte-level client, and every counter must
 * move by exactly what was sent, no more, no less.
 */
describe('Prometheus metrics', () => {
  let t: TestBroker
  const clients: MqttClient[] = []
  const raws: RawClient[] = []
  const connect = async (clientId: string, clean = true): Promise<Awaited<ReturnType<typeof connectClient>>> => {
    const c = await connectClient(t.mqttUrl, { clientId, clean, keepalive: 60 })
    clients.push(c)
    return c
  }
  const raw = async (): Promise<RawClient> => {
    const r = await openRaw('tcp', t)
    raws.push(r)
    return r
  }
  const connectSize = (clientId: string): number =>
    mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 60 }).length

  beforeEach(async () => { t = await startTestBroker() })
  afterEach(async () => {
    for (const r of raws.splice(0)) if (!r.isClosed) r.destroy()
    await Promise.all(clients.splice(0).map(async c => await endClient(c, true)))
    await t.close()
  })

  it('counts 3 connections and 10 QoS 1 publishes exactly: packets, messages, payload and wire bytes', async () => {
    const before = await scrape(t.adminUrl)
    const sub = await connect('m-sub')
    await sub.subscribeAsync('t/#', { qos: 1 })
    const pub = await connect('m-pub')
    await connect('m-idle')
    for (let i = 0; i < 10; i++) await pub.publishAsync('t/x', `payload-${String(i).padStart(2, '0')}`, { qos: 1 })
    await waitFor(() => sub.received.length === 10, '10 messages at the subscriber')
    // The subscriber's PUBACKs are on their way: wait until nothing is in flight.
    let after = await scrape(t.adminUrl)
    for (let i = 0; i < 50 && value(after, 'culex_inflight_messages{direction="out"}') !== 0; i++) {
      await sleep(20)
      after = await scrape(t.adminUrl)
    }

    expect(value(after, 'culex_connections')).toBe(3)
    expect(delta(before, after, 'culex_connections_accepted_total')).toBe(3)
    expect(value(after, 'culex_connections_max')).toBe(3)
    expect(delta(before, after, 'culex_messages_received_total{qos="1"}')).toBe(10)
    expect(delta(before, after, 'culex_messages_received_total{qos="0"}')).toBe(0)
    expect(delta(before, after, 'culex_messages_sent_total{qos="1"}')).toBe(10)
    expect(delta(before, after, 'culex_message_payload_bytes_received_total{qos="1"}')).toBe(100)
    expect(delta(before, after, 'culex_message_payload_bytes_sent_total{qos="1"}')).toBe(100)
    expect(delta(before, after, 'culex_packets_received_total{type="connect"}')).toBe(3)
    expect(delta(before, after, 'culex_packets_received_total{type="subscribe"}')).toBe(1)
    expect(delta(before, after, 'culex_packets_received_total{type="publish"}')).toBe(10)
    expect(delta(before, after, 'culex_packets_received_total{type="puback"}')).toBe(10)
    expect(delta(before, after, 'culex_packets_sent_total{type="connack"}')).toBe(3)
    expect(delta(before, after, 'culex_packets_sent_total{type="suback"}')).toBe(1)
    expect(delta(before, after, 'culex_packets_sent_total{type="publish"}')).toBe(10)
    expect(delta(before, after, 'culex_packets_sent_total{type="puback"}')).toBe(10)
    expect(value(after, 'culex_inflight_messages{direction="out"}')).toBe(0)

    // A QoS 1 PUBLISH on t/x with a 10-byte payload is 19 bytes; PUBACK 4, CONNACK 4, SUBACK for one filter 5.
    const subscribeSize = mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't/#', qos: 1 }] }).length
    const received = connectSize('m-sub') + connectSize('m-pub') + connectSize('m-idle') + subscribeSize + 10 * 19 + 10 * 4
    expect(delta(before, after, 'culex_bytes_received_total')).toBe(received)
    expect(delta(before, after, 'culex_bytes_sent_total')).toBe(3 * 4 + 5 + 10 * 19 + 10 * 4)

    const stats = await (await fetch(`${t.adminUrl}/api/stats`)).json() as { messages: { received: number[], sent: number[] }, clients: { connected: number } }
    expect(stats.messages.received[1]).toBe(10)
    expect(stats.messages.sent[1]).toBe(10)
    expect(stats.clients.connected).toBe(3)
  })

  it('counts refused connections by reason', async () => {
    const before = await scrape(t.adminUrl)
    // MQTT 3.1 allows client ids of at most 23 characters: CONNACK 2, identifier rejected.
    const longId = await raw()
    longId.sendRaw(connectBytes({ protocolName: 'MQIsdp', protocolLevel: 3, clientId: 'x'.repeat(30) }))
    expect((await longId.next<IConnackPacket>('connack')).returnCode).toBe(2)
    // Not MQTT at all: closed before any CONNACK.
    const garbage = await raw()
    garbage.sendRaw(connectBytes({ protocolName: 'HTTP', clientId: 'g' }))
    expect(await garbage.waitClosed()).toBe(true)
    await waitFor(() => t.logs.some(l => l.msg === 'connection refused'), 'the refusal to be handled')
    const after = await scrape(t.adminUrl)
    expect(delta(before, after, 'culex_connections_refused_total{reason="identifier_rejected"}')).toBe(1)
    expect(delta(before, after, 'culex_connections_refused_total{reason="closed_before_connack"}')).toBe(1)
    expect(delta(before, after, 'culex_connections_refused_total{reason="not_authorized"}')).toBe(0)
    expect(delta(before, after, 'culex_connections_accepted_total')).toBe(0)
  })

  it('keeps a QoS 1 message in flight until the subscriber acknowledges it, and a QoS 2 one until PUBCOMP', async () => {
    const slow = await raw()
    await slow.connect({ clientId: 'slow' })
    slow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'f/#', qos: 1 }] })
    await slow.next('suback')
    const pub = await connect('f-pub')
    await pub.publishAsync('f/1', 'one', { qos: 1 })
    const delivered = await slow.next<IPublishPacket>('publish')
    const inflight = async (direction: string): Promise<number> => value(await scrape(t.adminUrl), `culex_inflight_messages{direction="${direction}"}`)
    expect(await inflight('out')).toBe(1)
    const detail = await (await fetch(`${t.adminUrl}/api/clients/slow`)).json() as { inflight: { out: number } }
    expect(detail.inflight.out).toBe(1)
    slow.send({ cmd: 'puback', messageId: delivered.messageId ?? 0 })
    await waitFor(() => t.broker.metrics.totals.inflightOut === 0, 'the PUBACK')
    expect(await inflight('out')).toBe(0)

    // Inbound QoS 2: in flight from PUBLISH until the broker sends PUBCOMP.
    slow.send({ cmd: 'publish', topic: 'g/2', payload: Buffer.from('two'), qos: 2, messageId: 9, retain: false, dup: false })
    await slow.next('pubrec')
    expect(await inflight('in')).toBe(1)
    slow.send({ cmd: 'pubrel', messageId: 9 })
    await slow.next('pubcomp')
    expect(await inflight('in')).toBe(0)
  })

  it('reports the store: retained, persistent sessions, queue depth and bytes, consumer lag, deepest sessions', async () => {
    const durable = await connect('deep', false)
    await durable.subscribeAsync('q/#', { qos: 1 })
    await endClient(durable)
    const pub = await connect('q-pub')
    for (let i = 0; i < 5; i++) await pub.publishAsync('q/m', 'four', { qos: 1 })
    await pub.publishAsync('r/1', 'retained-1', { qos: 1, retain: true })
    await pub.publishAsync('r/2', 'retained-2', { qos: 0, retain: true })
    await sleep(1100)
    await t.broker.store.barrier()
    const s = await scrape(t.adminUrl)
    expect(value(s, 'culex_sessions_persistent')).toBe(1)
    expect(value(s, 'culex_sessions_offline')).toBe(1)
    expect(value(s, 'culex_queued_messages')).toBe(5)
    expect(value(s, 'culex_queued_bytes')).toBe(20)
    expect(value(s, 'culex_session_queued_messages{client_id="deep"}')).toBe(5)
    expect(value(s, 'culex_retained_messages')).toBe(2)
    expect(value(s, 'culex_subscriptions')).toBe(1)
    expect(value(s, 'culex_queued_oldest_age_seconds')).toBeGreaterThanOrEqual(1)
    expect(value(s, 'culex_store_write_batches_total')).toBeGreaterThan(0)
    // Every committed batch is observed once, with at least one write in it.
    expect(value(s, 'culex_store_batch_ops_count')).toBe(value(s, 'culex_store_write_batches_total'))
    expect(value(s, 'culex_store_batch_ops_sum')).toBeGreaterThanOrEqual(value(s, 'culex_store_batch_ops_count'))
    expect(value(s, 'culex_store_batch_seconds_count')).toBe(value(s, 'culex_store_batch_ops_count'))
  })

  it('serves process metrics and the counters other features register', async () => {
    const counter = t.broker.metrics.counter({ name: 'culex_test_feature_total', help: 'A feature counter.', labelNames: ['kind'] })
    counter.inc({ kind: 'a' }, 3)
    t.broker.metrics.authFailure('acl_denied')
    t.broker.metrics.countersFrom('culex_test_plain_total', 'Plain totals.', 'event', () => ({ fooBar: 7 }))
    const s = await scrape(t.adminUrl)
    expect(value(s, 'culex_test_feature_total{kind="a"}')).toBe(3)
    expect(value(s, 'culex_auth_failures_total{reason="acl_denied"}')).toBe(1)
    expect(value(s, 'culex_auth_failures_total{reason="bad_username_or_password"}')).toBe(0)
    expect(value(s, 'culex_test_plain_total{event="foo_bar"}')).toBe(7)
    expect(value(s, 'process_resident_memory_bytes')).toBeGreaterThan(0)
    expect(s.has('nodejs_eventloop_lag_seconds')).toBe(true)
    expect(value(s, 'culex_auth_events_total{event="login_failures"}')).toBe(0)
  })
})
