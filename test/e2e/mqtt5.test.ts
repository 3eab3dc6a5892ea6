/**
 * The built culex command against mosquitto_sub and mosquitto_pub at MQTT 5 (-V mqttv5): what a user checks by hand
 * once Culex says it speaks MQTT 5 — messages at every QoS with their properties (-D publish ...), MQTT 3.1.1 and
 * MQTT 5 clients on the same topics, the subscriber's Maximum Packet Size and Session Expiry Interval (-D connect
 * ...), message expiry in a session queue, a delayed will (-D will ...), and a v5 persistent session across kill -9.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir, type RunningCli } from '../helpers/cli.js'
import { mosquittoPub, mosquittoPubLines, mosquittoSub, receiveThenStop, runMosquittoSub } from './support/mosquitto.js'

const V5 = ['-V', 'mqttv5']
const dirs: string[] = []
async function dataDir (): Promise<string> {
  const dir = await tempDataDir()
  dirs.push(dir)
  return dir
}

beforeAll(async () => { await ensureBuilt() }, 180_000)
afterEach(async () => { await killAllChildren('client') })
afterAll(async () => {
  await killAllChildren()
  await Promise.all(dirs.map(removeDir))
})

describe('mosquitto clients at MQTT 5', () => {
  let cli: RunningCli
  beforeAll(async () => { cli = await startCli(startArgs(await dataDir())) })
  afterAll(async () => {
    if (cli !== undefined) expect(await cli.stop('SIGTERM')).toBe(0)
  })

  it('mosquitto_sub -V mqttv5 gets what mosquitto_pub -V mqttv5 sends at QoS 0, 1 and 2, with its content type and user property', async () => {
    // -F: topic, payload, content type, user properties
    const sub = mosquittoSub(cli.ports.mqtt, [...V5, '-t', 'e5/qos/#', '-q', '2', '-F', '%t|%p|%C|%P'])
    expect(await sub.subscribed).toEqual([2])
    for (const qos of [0, 1, 2]) {
      const r = await mosquittoPub(cli.ports.mqtt, [...V5, '-t', `e5/qos/q${qos}`, '-m', `at qos ${qos}`, '-q', String(qos), '-D', 'publish', 'content-type', 'text/plain', '-D', 'publish', 'user-property', 'site', 'north'])
      expect(r.code, r.stderr).toBe(0)
    }
    await sub.waitForMessages(3)
    expect(sub.messages().sort()).toEqual([0, 1, 2].map(q => `e5/qos/q${q}|at qos ${q}|text/plain|site:north`))
    expect(sub.publishes().map(p => p.qos).sort()).toEqual([0, 1, 2])
  })

  it('an MQTT 3.1.1 and an MQTT 5 mosquitto client exchange messages on the same topics', async () => {
    const sub5 = mosquittoSub(cli.ports.mqtt, [...V5, '-t', 'e5/mix/#', '-q', '1', '-v'])
    const sub311 = mosquittoSub(cli.ports.mqtt, ['-V', 'mqttv311', '-t', 'e5/mix/#', '-q', '1', '-v'])
    expect(await sub5.subscribed).toEqual([1])
    expect(await sub311.subscribed).toEqual([1])
    const from5 = await mosquittoPub(cli.ports.mqtt, [...V5, '-t', 'e5/mix/from5', '-m', 'sent at v5', '-q', '1', '-D', 'publish', 'user-property', 'k', 'v'])
    const from311 = await mosquittoPub(cli.ports.mqtt, ['-V', 'mqttv311', '-t', 'e5/mix/from311', '-m', 'sent at 3.1.1', '-q', '1'])
    expect([from5.code, from311.code], from5.stderr + from311.stderr).toEqual([0, 0])
    const expected = ['e5/mix/from311 sent at 3.1.1', 'e5/mix/from5 sent at v5']
    expect((await sub5.waitForMessages(2)).sort()).toEqual(expected)
    expect((await sub311.waitForMessages(2)).sort()).toEqual(expected)
  })

  it('mosquitto at v5: a Subscription Identifier on what it gets, topic aliases from mosquitto_pub -l, a retained message\'s expiry counted down', async () => {
    // -F: subscription identifier, message expiry interval, topic, payload
    const sub = mosquittoSub(cli.ports.mqtt, [...V5, '-t', 'e5/sid/#', '-q', '1', '-D', 'subscribe', 'subscription-identifier', '42', '-F', '%S|%E|%t|%p'])
    expect(await sub.subscribed).toEqual([1])
    const lines = await mosquittoPubLines(cli.ports.mqtt, [...V5, '-l', '-q', '1', '-t', 'e5/sid/alias', '-D', 'publish', 'topic-alias', '1'], 'one\ntwo\nthree\n')
    expect(lines.code, lines.stderr).toBe(0)
    const kept = await mosquittoPub(cli.ports.mqtt, [...V5, '-q', '1', '-r', '-t', 'e5/sid/kept', '-m', 'kept', '-D', 'publish', 'message-expiry-interval', '60'])
    expect(kept.code, kept.stderr).toBe(0)
    expect(await sub.waitForMessages(4)).toEqual(['42||e5/sid/alias|one', '42||e5/sid/alias|two', '42||e5/sid/alias|three', '42|60|e5/sid/kept|kept'])
    const late = await receiveThenStop(cli.ports.mqtt, [...V5, '-t', 'e5/sid/kept', '-D', 'subscribe', 'subscription-identifier', '7', '-F', '%S|%E|%r|%p'], 1)
    expect(late.messages).toHaveLength(1)
    expect(late.messages[0]).toMatch(/^7\|(59|60)\|1\|kept$/)
  })

  it('-D publish message-expiry-interval, response-topic, correlation-data, payload-format-indicator and content-type reach mosquitto_sub unaltered (-F %E %R %D %F %C)', async () => {
    const sub = mosquittoSub(cli.ports.mqtt, [...V5, '-t', 'e5/props/#', '-q', '1', '-F', '%t|%p|%E|%R|%D|%F|%C'])
    expect(await sub.subscribed).toEqual([1])
    const r = await mosquittoPub(cli.ports.mqtt, [...V5, '-t', 'e5/props/request', '-m', '{"ask":1}', '-q', '1',
      '-D', 'publish', 'message-expiry-interval', '120', '-D', 'publish', 'response-topic', 'e5/props/reply',
      '-D', 'publish', 'correlation-data', 'req-7', '-D', 'publish', 'payload-format-indicator', '1', '-D', 'publish', 'content-type', 'application/json'])
    expect(r.code, r.stderr).toBe(0)
    const [line] = await sub.waitForMessages(1)
    const [topic, payload, expiry, ...rest] = line.split('|')
    expect([topic, payload, ...rest]).toEqual(['e5/props/request', '{"ask":1}', 'e5/props/reply', 'req-7', '1', 'application/json'])
    expect(Number(expiry)).toBeGreaterThanOrEqual(119)
  })

  it('-D connect maximum-packet-size: a message too large for the subscriber is not sent to it, the others are', async () => {
    const sub = mosquittoSub(cli.ports.mqtt, [...V5, '-t', 'e5/size/#', '-q', '1', '-v', '-D', 'connect', 'maximum-packet-size', '200'])
    expect(await sub.subscribed).toEqual([1])
    for (const m of ['small one', 'x'.repeat(400), 'small two']) {
      const r = await mosquittoPub(cli.ports.mqtt, [...V5, '-t', 'e5/size/t', '-m', m, '-q', '1'])
      expect(r.code, r.stderr).toBe(0)
    }
    await sub.waitForMessage('e5/size/t small two')
    expect(sub.messages()).toEqual(['e5/size/t small one', 'e5/size/t small two'])
  })
})

it('a v5 persistent session keeps its Subscription Identifier across kill -9', async () => {
  const dir = await dataDir()
  let cli = await startCli(startArgs(dir))
  const session = [...V5, '-c', '-i', 'e5-sid', '-x', '3600', '-q', '1']
  const first = await runMosquittoSub(cli.ports.mqtt, [...session, '-t', 'e5/sidd/#', '-D', 'subscribe', 'subscription-identifier', '9', '-E'])
  expect(first.code, first.stdout + first.stderr).toBe(0)
  for (let i = 1; i <= 3; i++) {
    const r = await mosquittoPub(cli.ports.mqtt, [...V5, '-q', '1', '-t', 'e5/sidd/t', '-m', `m${i}`])
    expect(r.code, r.stderr).toBe(0)
  }
  await cli.kill9()
  cli = await startCli(startArgs(dir))
  // back with another filter: the queued messages came through the stored one, and carry its identifier
  const r = await receiveThenStop(cli.ports.mqtt, [...session, '-t', 'e5/other', '-F', '%S|%t|%p'], 3)
  expect(r.code, r.stdout + r.stderr).toBe(0)
  expect(r.messages).toEqual(['9|e5/sidd/t|m1', '9|e5/sidd/t|m2', '9|e5/sidd/t|m3'])
  expect(await cli.stop('SIGTERM')).toBe(0)
})

it('-D connect session-expiry-interval: a 1 s session is gone 2 s after its client left, a 3600 s one keeps its queue; -D publish message-expiry-interval 1 expires in the queue and 60 is counted down', async () => {
  const cli = await startCli(startArgs(await dataDir()))
  // -c (Clean Start 0) sets the interval itself: the first visit starts a new session (Clean Start 1) kept for the
  // interval given with -D, the second resumes it with -c
  const sub = ['-q', '1', '-t', 'e5/sx/#', '-F', '%t|%p|%E']
  const resume = (id: string): string[] => [...V5, '-c', '-x', '3600', '-i', id, ...sub]
  for (const [id, seconds] of [['e5-short', 1], ['e5-long', 3600]] as const) {
    const first = await runMosquittoSub(cli.ports.mqtt, [...V5, '-i', id, '-D', 'connect', 'session-expiry-interval', String(seconds), ...sub, '-E'])
    expect(first.code, first.stdout + first.stderr).toBe(0)
  }
  for (const [m, expiry] of [['lives 1 s', '1'], ['lives 60 s', '60']]) {
    const r = await mosquittoPub(cli.ports.mqtt, [...V5, '-t', 'e5/sx/t', '-m', m, '-q', '1', '-D', 'publish', 'message-expiry-interval', expiry])
    expect(r.code, r.stderr).toBe(0)
  }
  await new Promise(resolve => setTimeout(resolve, 2200))
  const long = await receiveThenStop(cli.ports.mqtt, resume('e5-long'), 1)
  expect(long.code, long.stdout + long.stderr).toBe(0)
  const [topic, payload, expiry] = long.messages[0].split('|')
  expect([topic, payload]).toEqual(['e5/sx/t', 'lives 60 s'])
  expect(Number(expiry)).toBeGreaterThanOrEqual(55)
  expect(Number(expiry)).toBeLessThanOrEqual(58)
  const short = mosquittoSub(cli.ports.mqtt, resume('e5-short'))
  await short.subscribed
  const fence = await mosquittoPub(cli.ports.mqtt, [...V5, '-t', 'e5/sx/fence', '-m', 'fence', '-q', '1'])
  expect(fence.code, fence.stderr).toBe(0)
  await short.waitForMessage('e5/sx/fence|fence|')
  expect(short.messages()).toEqual(['e5/sx/fence|fence|'])
  expect(await cli.stop('SIGTERM')).toBe(0)
})

it('-D will will-delay-interval: a mosquitto_sub killed with SIGKILL (its socket closed, no DISCONNECT) has its will published after the delay, not at once', async () => {
  const cli = await startCli(startArgs(await dataDir()))
  const watcher = mosquittoSub(cli.ports.mqtt, [...V5, '-t', 'e5/will/#', '-q', '1', '-v'])
  await watcher.subscribed
  const willer = mosquittoSub(cli.ports.mqtt, [...V5, '-i', 'e5-willer', '-x', '60', '-t', 'e5/unused', '--will-topic', 'e5/will/gone', '--will-payload', 'gone', '--will-qos', '1', '-D', 'will', 'will-delay-interval', '1'])
  await willer.subscribed
  willer.kill('SIGKILL')
  const killedAt = Date.now()
  await watcher.waitForMessage('e5/will/gone gone', 5000)
  expect(Date.now() - killedAt).toBeGreaterThanOrEqual(900)
  expect(await cli.stop('SIGTERM')).toBe(0)
})

it('a v5 persistent session (-c -x 3600) gets what was published while it was away, across kill -9', async () => {
  const dir = await dataDir()
  let cli = await startCli(startArgs(dir))
  const session = [...V5, '-c', '-i', 'e5-durable', '-x', '3600', '-q', '1', '-t', 'e5/durable/#', '-v']
  const first = await runMosquittoSub(cli.ports.mqtt, [...session, '-E'])
  expect(first.code, first.stdout + first.stderr).toBe(0)
  const expected = Array.from({ length: 20 }, (_, i) => `e5/durable/t message ${i + 1}`)
  for (const line of expected) {
    const r = await mosquittoPub(cli.ports.mqtt, [...V5, '-q', '1', '-t', 'e5/durable/t', '-m', line.slice('e5/durable/t '.length)])
    expect(r.code, r.stderr).toBe(0)
  }
  await cli.kill9()
  cli = await startCli(startArgs(dir))
  const r = await receiveThenStop(cli.ports.mqtt, session, expected.length)
  expect(r.code, r.stdout + r.stderr).toBe(0)
  expect(r.messages.sort()).toEqual([...expected].sort())
  expect(r.publishes.every(p => p.qos === 1)).toBe(true)
  expect(await cli.stop('SIGTERM')).toBe(0)
})
