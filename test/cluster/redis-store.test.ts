import { afterEach, describe, expect, it } from 'vitest'
import type { IPublishPacket } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient, sleep, waitFor } from '../helpers/clients.js'
import { openRaw } from '../helpers/raw-client.js'
import { startTestRedis, type TestRedis } from '../helpers/redis-server.js'

describe('a broker on the Redis store (cluster.redisUrl)', () => {
  let t: TestBroker | undefined
  let redis: TestRedis | undefined
  afterEach(async () => {
    await t?.close()
    t = undefined
    await redis?.close()
    redis = undefined
  })

  it('keeps every acknowledged QoS 1 message of an offline persistent subscriber across a kill -9 of Redis (AOF always) and a broker restart', async () => {
    redis = await startTestRedis({ appendfsync: 'always' })
    t = await startTestBroker({ 'cluster.redisUrl': redis.url })
    expect(t.broker.store.location).toBe(`redis://127.0.0.1:${redis.port}`)
    const sub = await connectClient(t.mqttUrl, { clientId: 'keeper', clean: false })
    await sub.subscribeAsync('orders/#', { qos: 1 })
    await endClient(sub)
    const pub = await connectClient(t.mqttUrl, { clientId: 'orders-pub' })
    const count = 300
    // in flight together, each publishAsync resolving on its PUBACK
    await Promise.all(Array.from({ length: count }, async (_, i) => await pub.publishAsync(`orders/${i % 7}`, `m${i}`, { qos: 1 })))
    await endClient(pub)
    await t.broker.close()
    await redis.kill()
    await redis.start()
    t = await t.restart()
    const back = await connectClient(t.mqttUrl, { clientId: 'keeper', clean: false })
    expect(back.sessionPresent).toBe(true)
    await waitFor(() => back.received.length >= count, `${count} messages`, 15_000)
    expect(back.received.map(m => m.payload)).toEqual(Array.from({ length: count }, (_, i) => `m${i}`))
    await endClient(back)
  }, 60_000)

  it('holds the PUBACK while Redis is down, logs it once, and delivers everything once Redis is back', async () => {
    redis = await startTestRedis({ appendfsync: 'always' })
    t = await startTestBroker({ 'cluster.redisUrl': redis.url })
    const broker = t
    const sub = await connectClient(broker.mqttUrl, { clientId: 'patient', clean: false })
    await sub.subscribeAsync('alerts/#', { qos: 1 })
    await endClient(sub)
    const pub = await connectClient(broker.mqttUrl, { clientId: 'alerts-pub', reconnectPeriod: 0 })
    await pub.publishAsync('alerts/0', 'before', { qos: 1 })

    await redis.kill()
    await waitFor(() => broker.logs.some(l => l.msg?.toString().startsWith('redis unavailable') === true), 'the outage to be logged')
    const acked: string[] = []
    const sent = Array.from({ length: 20 }, async (_, i) => {
      await pub.publishAsync(`alerts/${i + 1}`, `during${i}`, { qos: 1 })
      acked.push(`during${i}`)
    })
    // Nothing is acknowledged while Redis is away (the writes wait for it).
    await sleep(700)
    expect(acked).toEqual([])
    expect(broker.logs.filter(l => String(l.msg).startsWith('redis unavailable')).length).toBe(1)

    await redis.start()
    await Promise.all(sent)
    expect(acked.length).toBe(20)
    await waitFor(() => broker.logs.some(l => l.msg === 'redis available again'), 'the recovery to be logged')
    expect(broker.logs.filter(l => String(l.msg).startsWith('redis unavailable')).length).toBe(1)
    await endClient(pub)

    const back = await connectClient(broker.mqttUrl, { clientId: 'patient', clean: false })
    expect(back.sessionPresent).toBe(true)
    await waitFor(() => back.received.length >= 21, '21 messages', 10_000)
    expect(back.received.map(m => m.payload).sort()).toEqual(['before', ...Array.from({ length: 20 }, (_, i) => `during${i}`)].sort())
    await endClient(back)
  }, 60_000)

  // The resend after a reconnect records its packet id again (held back 100 ms); the id was already in Redis from
  // the connection it was first sent on, and a PUBACK within those 100 ms must still delete the entry.
  it('a QoS 1 message resent at a reconnect and acknowledged at once is deleted: it is not sent again at the next reconnect', async () => {
    redis = await startTestRedis()
    t = await startTestBroker({ 'cluster.redisUrl': redis.url })
    const broker = t
    const rx = await openRaw('tcp', broker)
    await rx.connect({ clientId: 'resent', clean: false })
    rx.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'resent/#', qos: 1 }] })
    await rx.next('suback')
    const pub = await connectClient(broker.mqttUrl, { clientId: 'resent-pub' })
    await pub.publishAsync('resent/a', 'first', { qos: 1 })
    const first = await rx.next<IPublishPacket>('publish')
    await rx.disconnect()

    const again = await openRaw('tcp', broker)
    await again.connect({ clientId: 'resent', clean: false })
    const resent = await again.next<IPublishPacket>('publish')
    expect([resent.payload.toString(), resent.messageId, resent.dup]).toEqual(['first', first.messageId, true])
    again.send({ cmd: 'puback', messageId: resent.messageId })
    // the PUBACK is handled before this message, published after it, is delivered
    await pub.publishAsync('resent/a', 'second', { qos: 1 })
    const second = await again.next<IPublishPacket>('publish')
    expect(second.payload.toString()).toBe('second')
    await again.disconnect()

    const last = await openRaw('tcp', broker)
    await last.connect({ clientId: 'resent', clean: false })
    const next = await last.next<IPublishPacket>('publish')
    expect([next.payload.toString(), next.messageId, next.dup], 'only the unacknowledged message comes back').toEqual(['second', second.messageId, true])
    const more = await last.next('publish', 500).then(p => p, () => undefined)
    expect(more, 'the acknowledged message is not sent again').toBeUndefined()
    await last.disconnect()
    await endClient(pub)
  })
})
