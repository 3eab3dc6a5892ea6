import { describe, expect, it } from 'vitest'
import mqttPacket, { type ISubackPacket, type IUnsubackPacket } from 'mqtt-packet'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { brokerPerTest } from './mqtt5-support.js'
import { openRaw } from '../helpers/raw-client.js'
import { writePasswordFile } from '../auth/support.js'

const sub = (topic: string, qos: 0 | 1 | 2 = 1): { topic: string, qos: 0 | 1 | 2, nl: boolean, rap: boolean, rh: number } => ({ topic, qos, nl: false, rap: false, rh: 0 })

/**
 * The SUBACK and UNSUBACK reason codes a v5 client gets (docs/protocol.md, "MQTT 5"): each refused filter says why,
 * with a Reason String unless the client asked for no problem information; an MQTT 3.1.1 client gets 0x80.
 */
describe('MQTT 5 SUBACK and UNSUBACK reason codes', () => {
  let t: TestBroker
  brokerPerTest(started => { t = started })

  it('answers each refused filter with its reason: 0x87 for the ACL, 0x8F for a filter not taken, 0x97 over the subscription limit', async () => {
    const passwd = await writePasswordFile(path.join(t.dataDir, 'passwd'), { alice: 'a' })
    const aclFile = path.join(t.dataDir, 'acl.conf')
    await writeFile(aclFile, 'user alice\ntopic read allowed/#\ntopic read $share/+/allowed/#\n')
    const secured = await startTestBroker({
      'auth.passwordFile': passwd, 'auth.aclFile': aclFile, 'auth.watchFiles': false, 'limits.maxTopicLength': 40, 'limits.maxSubscriptionsPerClient': 3
    })
    try {
      const raw = await openRaw('tcp', secured, { version: 5 })
      expect((await raw.connect({ clientId: 'alice', username: 'alice', password: Buffer.from('a'), protocolVersion: 5 })).reasonCode).toBe(0)
      raw.send({
        cmd: 'subscribe',
        messageId: 1,
        subscriptions: [sub('allowed/a', 2), sub('forbidden/x'), sub(`allowed/${'x'.repeat(50)}`), sub('$share//allowed/b'), sub('allowed/b', 0)]
      })
      const suback = await raw.next<ISubackPacket>('suback')
      expect(suback.granted).toEqual([2, 0x87, 0x8F, 0x8F, 0])
      expect(suback.properties?.reasonString).toMatch(/^forbidden\/x: unauthorized: .*; allowed\/x+: filter-invalid: limits.maxTopicLength.*; \$share\/\/allowed\/b: filter-invalid: empty share name$/)
      raw.send({ cmd: 'subscribe', messageId: 2, subscriptions: [sub('allowed/c'), sub('allowed/d')] })
      const over = await raw.next<ISubackPacket>(p => p.cmd === 'suback' && p.messageId === 2)
      expect(over.granted).toEqual([1, 0x97])
      expect(over.properties?.reasonString).toMatch(/^allowed\/d: quota: limits.maxSubscriptionsPerClient/)
      raw.destroy()

      // no Reason String for a client that asked for no problem information [MQTT-3.1.2-29]
      const quiet = await openRaw('tcp', secured, { version: 5 })
      await quiet.connect({ clientId: 'quiet', username: 'alice', password: Buffer.from('a'), protocolVersion: 5, properties: { requestProblemInformation: false } })
      quiet.send({ cmd: 'subscribe', messageId: 3, subscriptions: [sub('forbidden/y')] })
      const quietAck = await quiet.next<ISubackPacket>('suback')
      expect([quietAck.granted, quietAck.properties]).toEqual([[0x87], undefined])
      quiet.destroy()

      // an MQTT 3.1.1 client gets 0x80 for every refusal
      const old = await openRaw('tcp', secured)
      await old.connect({ clientId: 'old', username: 'alice', password: Buffer.from('a') })
      old.send({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: 'forbidden/z', qos: 1 }, { topic: `allowed/${'x'.repeat(50)}`, qos: 1 }, { topic: 'allowed/e', qos: 1 }] })
      expect((await old.next<ISubackPacket>('suback')).granted).toEqual([0x80, 0x80, 1])
      old.destroy()
    } finally {
      await secured.close()
    }
  })

  it('answers a repeated filter in one SUBSCRIBE once, with the codes in the order aedes answered', async () => {
    const raw = await openRaw('tcp', t, { version: 5 })
    await raw.connect({ clientId: 'repeat', protocolVersion: 5 })
    raw.send({ cmd: 'subscribe', messageId: 5, subscriptions: [sub('r/a', 0), sub('r/b', 1), sub('r/a', 2)] })
    const suback = await raw.next<ISubackPacket>('suback')
    expect(suback.granted).toEqual([2, 1])
    raw.destroy()
  })

  it('answers UNSUBACK 0x11 for a filter that had no subscription, 0x00 for one that had', async () => {
    const raw = await openRaw('tcp', t, { version: 5 })
    await raw.connect({ clientId: 'unsub', protocolVersion: 5 })
    raw.send({ cmd: 'subscribe', messageId: 6, subscriptions: [sub('u/a')] })
    await raw.next('suback')
    raw.send({ cmd: 'unsubscribe', messageId: 7, unsubscriptions: ['u/a', 'u/never'] })
    expect((await raw.next<IUnsubackPacket>('unsuback')).granted).toEqual([0x00, 0x11])
    raw.destroy()
  })

  it('answers a SUBSCRIBE or UNSUBSCRIBE reusing the identifier of one not answered yet with 0x91 for each filter, and does not handle it', async () => {
    const raw = await openRaw('tcp', t, { version: 5 })
    await raw.connect({ clientId: 'reuse', protocolVersion: 5 })
    // one write: the second SUBSCRIBE is read while the first is being authorized
    raw.sendRaw(Buffer.concat([
      mqttPacket.generate({ cmd: 'subscribe', messageId: 9, subscriptions: [sub('first/a')] }, { protocolVersion: 5 }),
      mqttPacket.generate({ cmd: 'subscribe', messageId: 9, subscriptions: [sub('second/a'), sub('second/b')] }, { protocolVersion: 5 })
    ]))
    const acks = [await raw.next<ISubackPacket>('suback'), await raw.next<ISubackPacket>('suback')]
    expect(acks.map(a => a.granted).sort((x, y) => x.length - y.length)).toEqual([[1], [0x91, 0x91]])
    expect(acks.find(a => a.granted.length === 2)?.properties?.reasonString).toBe('packet identifier 9 is in use by a SUBSCRIBE not answered yet')
    raw.sendRaw(Buffer.concat([
      mqttPacket.generate({ cmd: 'unsubscribe', messageId: 10, unsubscriptions: ['first/a'] }, { protocolVersion: 5 }),
      mqttPacket.generate({ cmd: 'unsubscribe', messageId: 10, unsubscriptions: ['first/a'] }, { protocolVersion: 5 })
    ]))
    const unacks = [await raw.next<IUnsubackPacket>('unsuback'), await raw.next<IUnsubackPacket>('unsuback')]
    expect(unacks.map(a => a.granted).sort()).toEqual([[0x00], [0x91]])
    // only the first SUBSCRIBE was handled
    const held = (t.broker.aedes as unknown as { clients: Record<string, { subscriptions: Record<string, unknown> }> }).clients.reuse.subscriptions
    expect(Object.keys(held)).toEqual([])
    raw.destroy()
  })
})
