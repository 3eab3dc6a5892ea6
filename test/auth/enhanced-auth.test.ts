import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import mqttPacket, { type IAuthPacket, type IConnackPacket, type IDisconnectPacket, type IPublishPacket, type ISubackPacket } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'
import { transports } from '../helpers/clients.js'
import { challengeMethod, challengeResponse } from './challenge-method.js'
import { tempDir } from './support.js'

const METHOD = 'TEST-CHALLENGE'
const KEYS = { alice: 'alice-key' }

/**
 * MQTT 5 enhanced authentication over real sockets (docs/security.md, "Enhanced authentication"): a method plugged
 * into the registry every broker has (Culex.security.authMethods) through the contract of src/auth/methods.ts runs
 * its exchange in AUTH packets, decides who the client is for the ACL, and can be run again (re-authentication).
 */
describe.each(transports)('MQTT 5 enhanced authentication over %s', (transport) => {
  let t: TestBroker | undefined
  const raws: RawClient[] = []
  afterEach(async () => {
    for (const r of raws.splice(0)) r.destroy()
    await t?.close()
    t = undefined
  })

  const start = async (settings: Record<string, unknown> = {}): Promise<TestBroker> => {
    const dir = await tempDir()
    const aclFile = path.join(dir, 'acl.conf')
    await writeFile(aclFile, 'user alice\ntopic readwrite alice/#\n')
    t = await startTestBroker({ 'auth.aclFile': aclFile, 'auth.watchFiles': false, ...settings })
    t.broker.security.authMethods.register(challengeMethod(KEYS))
    return t
  }
  const open = async (b: TestBroker): Promise<RawClient> => {
    const raw = await openRaw(transport, b, { version: 5 })
    raws.push(raw)
    return raw
  }
  const sendConnect = (raw: RawClient, clientId: string, method: string, data: string): void => {
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId, properties: { authenticationMethod: method, authenticationData: Buffer.from(data) } })
  }
  const answer = (raw: RawClient, reasonCode: number, data: Buffer, method = METHOD): void => {
    raw.send({ cmd: 'auth', reasonCode, properties: { authenticationMethod: method, authenticationData: data } })
  }
  /** A raw client let in as alice through the whole exchange. */
  const connectedAsAlice = async (b: TestBroker, clientId: string): Promise<RawClient> => {
    const raw = await open(b)
    sendConnect(raw, clientId, METHOD, 'alice')
    const challenge = await raw.next<IAuthPacket>('auth')
    answer(raw, 0x18, challengeResponse(KEYS.alice, challenge.properties?.authenticationData as Buffer))
    expect((await raw.next<IConnackPacket>('connack')).reasonCode).toBe(0)
    return raw
  }

  it('lets a client in through the exchange (CONNECT, AUTH 0x18 both ways, CONNACK with the final data) as the user the method names', async () => {
    const b = await start()
    const watcher = await connectedAsAlice(b, 'watcher')
    watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'alice/#', qos: 0, nl: false, rap: false, rh: 0 }] })
    await watcher.next('suback')
    const raw = await open(b)
    sendConnect(raw, 'enhanced', METHOD, 'alice')
    const challenge = await raw.next<IAuthPacket>('auth')
    expect([challenge.reasonCode, challenge.properties?.authenticationMethod]).toEqual([0x18, METHOD])
    answer(raw, 0x18, challengeResponse(KEYS.alice, challenge.properties?.authenticationData as Buffer))
    // sent before CONNACK: held, then handled as alice's once she is in
    raw.send({ cmd: 'publish', topic: 'alice/early', payload: Buffer.from('pipelined'), qos: 0, dup: false, retain: false })
    const connack = await raw.next<IConnackPacket>('connack')
    expect(connack.reasonCode).toBe(0)
    expect(connack.properties?.authenticationMethod).toBe(METHOD)
    expect(connack.properties?.authenticationData?.toString()).toBe('welcome alice')
    // the ACL knows the client as alice
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'alice/in', qos: 1, nl: false, rap: false, rh: 0 }, { topic: 'bob/in', qos: 1, nl: false, rap: false, rh: 0 }] })
    expect((await raw.next<ISubackPacket>('suback')).granted).toEqual([1, 0x87])
    expect(b.logs.some(l => l.msg === 'client connected' && l.clientId === 'enhanced' && l.username === 'alice')).toBe(true)
    const early = await watcher.next<IPublishPacket>('publish')
    expect([early.topic, early.payload.toString()]).toEqual(['alice/early', 'pipelined'])
  })

  it('refuses a wrong answer with CONNACK 0x87 and the reason, with a PUBLISH pipelined behind the CONNECT held meanwhile', async () => {
    const b = await start()
    const raw = await open(b)
    sendConnect(raw, 'guesser', METHOD, 'alice')
    await raw.next<IAuthPacket>('auth')
    raw.send({ cmd: 'publish', topic: 'alice/sneaky', payload: Buffer.from('x'), qos: 0, dup: false, retain: false })
    answer(raw, 0x18, Buffer.from('not the answer'))
    const connack = await raw.next<IConnackPacket>('connack')
    expect([connack.reasonCode, connack.properties?.reasonString]).toEqual([0x87, 'wrong answer to the challenge'])
    expect(await raw.waitClosed(5000)).toBe(true)
    // the operator sees why in the log
    expect(b.logs.some(l => l.clientId === 'guesser' && l.err === 'authentication failed: wrong answer to the challenge')).toBe(true)
  })

  it('refuses with 0x87 when the client does not answer within mqtt.connectTimeoutMs, and 0x8C for a method not offered', async () => {
    const b = await start({ 'mqtt.connectTimeoutMs': 300 })
    const silent = await open(b)
    sendConnect(silent, 'silent', METHOD, 'alice')
    await silent.next<IAuthPacket>('auth')
    const connack = await silent.next<IConnackPacket>('connack', 5000)
    expect([connack.reasonCode, connack.properties?.reasonString]).toEqual([0x87, 'no AUTH answer within 300 ms'])

    const other = await open(b)
    sendConnect(other, 'scram', 'SCRAM-SHA-256', 'n,,n=alice,r=abc')
    const refused = await other.next<IConnackPacket>('connack')
    expect([refused.reasonCode, refused.properties?.reasonString]).toEqual([0x8C, 'authentication method SCRAM-SHA-256 is not offered'])
  })

  it('re-authenticates a connected client (AUTH 0x19 … AUTH 0x00); a failed re-authentication is DISCONNECT 0x87', async () => {
    const raw = await connectedAsAlice(await start(), 'again')

    answer(raw, 0x19, Buffer.from('alice'))
    const second = await raw.next<IAuthPacket>('auth')
    expect(second.reasonCode).toBe(0x18)
    answer(raw, 0x18, challengeResponse(KEYS.alice, second.properties?.authenticationData as Buffer))
    const done = await raw.next<IAuthPacket>('auth')
    expect([done.reasonCode ?? 0, done.properties?.authenticationData?.toString()]).toEqual([0, 'welcome alice'])
    raw.send({ cmd: 'pingreq' })
    await raw.next('pingresp')

    answer(raw, 0x19, Buffer.from('alice'))
    await raw.next<IAuthPacket>('auth')
    answer(raw, 0x18, Buffer.from('wrong'))
    const told = await raw.next<IDisconnectPacket>('disconnect')
    expect([told.reasonCode, told.properties?.reasonString]).toEqual([0x87, 're-authentication failed: wrong answer to the challenge'])
    expect(await raw.waitClosed(5000)).toBe(true)
  })

  it('closes with DISCONNECT 0x82 on AUTH naming another method, or from a client that used none', async () => {
    const b = await start()
    const raw = await connectedAsAlice(b, 'switcher')
    answer(raw, 0x19, Buffer.from('alice'), 'OTHER')
    expect((await raw.next<IDisconnectPacket>('disconnect')).reasonCode).toBe(0x82)
    expect(await raw.waitClosed(5000)).toBe(true)

    // a second AUTH 0x19 while one is under way is out of turn
    const twice = await connectedAsAlice(b, 'twice')
    const reauth = mqttPacket.generate({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: METHOD, authenticationData: Buffer.from('alice') } }, { protocolVersion: 5 })
    twice.sendRaw(Buffer.concat([reauth, reauth]))
    expect((await twice.next<IDisconnectPacket>('disconnect')).reasonCode).toBe(0x82)
    expect(await twice.waitClosed(5000)).toBe(true)

    const plain = await open(b)
    expect((await plain.connect({ clientId: 'plain', protocolVersion: 5 })).reasonCode).toBe(0)
    answer(plain, 0x19, Buffer.from('alice'))
    expect((await plain.next<IDisconnectPacket>('disconnect')).reasonCode).toBe(0x82)
    expect(await plain.waitClosed(5000)).toBe(true)
  })
})
