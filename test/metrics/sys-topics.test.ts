import { afterEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, endClient } from '../helpers/clients.js'
import { killAllChildren } from '../helpers/cli.js'
import { runMosquittoSub } from '../e2e/support/mosquitto.js'
import { loadSourceNames, sysTopics } from '../../src/sys-topics/index.js'
import { version } from '../../src/version.js'

/** The $SYS tree as `mosquitto_sub -t '$SYS/broker/#'` sees it. */
describe('$SYS topics', () => {
  let t: TestBroker | undefined
  afterEach(async () => {
    await killAllChildren()
    await t?.close()
    t = undefined
  })

  // "retained messages/count" is the one topic name with a space in it.
  const parse = (lines: string[]): Array<[string, string]> => lines.map(l => {
    const m = /^(\$SYS\/broker\/(?:retained messages\/)?\S*) (.*)$/.exec(l)
    if (m === null) throw new Error(`not a $SYS line: ${l}`)
    return [m[1], m[2]]
  })

  it('publishes the Mosquitto names every sysIntervalMs, at once to a new subscriber', async () => {
    t = await startTestBroker({ 'admin.sysIntervalMs': 400 })
    const pub = await connectClient(t.mqttUrl, { clientId: 'sys-pub' })
    for (let i = 0; i < 5; i++) await pub.publishAsync('s/x', 'hello', { qos: 1, retain: i === 0 })
    const loads = Object.fromEntries(loadSourceNames.map(name => [name, [0, 0, 0]]))
    const perRound = sysTopics(await t.broker.metrics.snapshot(), { version, heapMaximum: 0, loads }).length
    expect(perRound).toBe(51)
    const started = Date.now()
    const sub = await runMosquittoSub(t.mqttPort, ['-t', '$SYS/broker/#', '-v', '-C', String(2 * perRound)])
    expect(sub.code).toBe(0)
    const rounds = [parse(sub.messages.slice(0, perRound)), parse(sub.messages.slice(perRound))]
    // The first round came right after SUBACK; the second one at the next interval.
    expect(Date.now() - started).toBeLessThan(5000)
    const first = new Map(rounds[0])
    const second = new Map(rounds[1])
    expect(first.size).toBe(perRound)
    for (const name of [
      'clients/connected', 'clients/total', 'clients/maximum', 'clients/disconnected', 'messages/received', 'messages/sent',
      'publish/messages/received', 'publish/messages/sent', 'load/messages/received/1min', 'load/messages/sent/5min',
      'load/publish/received/15min', 'load/bytes/received/1min', 'load/connections/1min', 'uptime', 'version',
      'retained messages/count', 'subscriptions/count', 'bytes/received', 'bytes/sent', 'heap/current', 'store/messages/count'
    ]) expect(first.has(`$SYS/broker/${name}`), name).toBe(true)
    expect(first.get('$SYS/broker/version')).toBe(`culex version ${version}`)
    expect(first.get('$SYS/broker/uptime')).toMatch(/^\d+ seconds$/)
    // sys-pub and mosquitto_sub itself.
    expect(first.get('$SYS/broker/clients/connected')).toBe('2')
    expect(first.get('$SYS/broker/publish/messages/received')).toBe('5')
    expect(first.get('$SYS/broker/retained messages/count')).toBe('1')
    expect(first.get('$SYS/broker/subscriptions/count')).toBe('1')
    expect(first.get('$SYS/broker/load/messages/received/1min')).toMatch(/^\d+\.\d\d$/)
    expect(Number(second.get('$SYS/broker/load/messages/received/1min'))).toBeGreaterThan(0)
    expect(Number(second.get('$SYS/broker/messages/sent'))).toBeGreaterThan(Number(first.get('$SYS/broker/messages/sent')))
    expect(sub.publishes.every(p => p.qos === 0 && !p.retain)).toBe(true)
    await endClient(pub)
  })

  it('publishes nothing with sysIntervalMs 0', async () => {
    t = await startTestBroker({ 'admin.sysIntervalMs': 0 })
    const sub = await runMosquittoSub(t.mqttPort, ['-t', '$SYS/broker/#', '-v', '-W', '2'])
    expect(sub.messages).toEqual([])
    expect(t.logs.some(l => l.msg === 'sys topics started')).toBe(false)
  })
})
