import { writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { endClient, waitFor } from '../helpers/clients.js'
import { expectEnvelope, harnessPerTest, RELAXED_ACL, waitForEnvelopes } from './support.js'
import { tryConnect } from '../auth/support.js'

const PROPERTIES = {
  payloadFormatIndicator: true,
  messageExpiryInterval: 3600,
  contentType: 'application/json',
  responseTopic: 'replies/bob',
  correlationData: Buffer.from([0, 1, 2, 0xFF]),
  userProperties: { trace: ['t-1', 't-2'], tenant: 'acme' }
}

/** What the envelope shows of those: JSON, correlation data in base64, user properties as pairs in order. */
const ENVELOPE_PROPERTIES = {
  payloadFormatIndicator: true,
  messageExpiryInterval: 3600,
  contentType: 'application/json',
  responseTopic: 'replies/bob',
  correlationData: Buffer.from([0, 1, 2, 0xFF]).toString('base64'),
  userProperties: [['trace', 't-1'], ['trace', 't-2'], ['tenant', 'acme']]
}

/** The MQTT 5 properties of a dead letter: in its envelope, in the store across a restart, and on its replay. */
describe('dead letters of MQTT 5 messages', () => {
  const start = harnessPerTest()

  it('the envelope carries the PUBLISH properties, kept across a restart; the replay publishes them again', async () => {
    const h = await start({}, { acl: true })
    const w = await h.watch()
    const bob = await h.connect({ clientId: 'bob-5', username: 'bob', password: 'b', protocolVersion: 5 })
    await bob.publishAsync('home/lamp', '{"on":true}', { qos: 1, properties: PROPERTIES }).catch(() => undefined)
    await waitForEnvelopes(w, 1, 'the unauthorized envelope')
    const [{ envelope }] = w.envelopes()
    expectEnvelope(envelope, {
      reason: 'unauthorized', topic: 'home/lamp', payload: '{"on":true}', qos: 1, clientId: 'bob-5', username: 'bob', target: null,
      brokerId: h.t.broker.aedes.id, detail: /ACL does not allow/, properties: ENVELOPE_PROPERTIES
    })

    await h.restart()
    const shown = await h.api('GET', `/api/dead-letters/${envelope.id}`)
    expect(shown.body.properties).toEqual(ENVELOPE_PROPERTIES)

    await writeFile(h.aclFile, RELAXED_ACL)
    expect((await h.t.broker.security.reload()).aclFile).toBe('reloaded')
    const alice = await h.connect({ clientId: 'alice-5', username: 'alice', password: 'a', protocolVersion: 5 })
    await alice.subscribeAsync('home/#', { qos: 1 })
    expect((await h.api('POST', `/api/dead-letters/${envelope.id}/replay`)).body).toEqual({ id: envelope.id, outcome: 'published' })
    await waitFor(() => alice.received.length === 1, 'the replayed message')
    const { correlationData, ...rest } = alice.received[0].properties as Record<string, unknown>
    expect(rest).toEqual({ ...PROPERTIES, correlationData: undefined, messageExpiryInterval: rest.messageExpiryInterval })
    expect(Buffer.from(correlationData as Buffer)).toEqual(PROPERTIES.correlationData)
    expect(rest.messageExpiryInterval).toBeGreaterThan(3590)
  })

  it('a message the store drops (a full session queue) is dead-lettered with its properties', async () => {
    const h = await start({ 'sessions.maxQueuedMessages': 1, 'sessions.overflowPolicy': 'dropNewest' })
    const w = await h.watch()
    const away = await h.connect({ clientId: 'away', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } })
    await away.subscribeAsync('q/#', { qos: 1 })
    await endClient(away)
    const pub = await h.connect({ clientId: 'pub-5', protocolVersion: 5 })
    await pub.publishAsync('q/1', 'kept', { qos: 1 })
    await pub.publishAsync('q/2', 'dropped', { qos: 1, properties: { contentType: 'text/plain', userProperties: { k: 'v' } } })
    await waitForEnvelopes(w, 1, 'the queue-full envelope')
    const [{ topic, envelope }] = w.envelopes()
    expect(topic).toBe('$DLQ/queue-full/q/2')
    expect(envelope.properties).toEqual({ contentType: 'text/plain', userProperties: [['k', 'v']] })
  })

  it('a will the ACL refuses (CONNACK 0x87) is dead-lettered with its properties', async () => {
    const h = await start({}, { acl: true })
    const w = await h.watch()
    const refused = await tryConnect(h.t.mqttUrl, {
      clientId: 'bob-will-5', username: 'bob', password: 'b', protocolVersion: 5,
      will: { topic: 'home/bob/status', payload: Buffer.from('gone'), qos: 1, retain: false, properties: { contentType: 'text/plain', userProperties: { why: 'lost' } } }
    })
    expect(refused.result).toBe(0x87)
    await waitForEnvelopes(w, 1, 'the will-denied envelope')
    const [{ envelope }] = w.envelopes()
    expect([envelope.reason, envelope.properties]).toEqual(['will-denied', { contentType: 'text/plain', userProperties: [['why', 'lost']] }])
  })
})
