/**
 * The built culex command against the mosquitto command-line clients (Debian package mosquitto-clients): what a
 * user checks by hand with mosquitto_sub and mosquitto_pub, including persistent sessions across a graceful
 * restart and across kill -9.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir, type Proc, type RunningCli
} from '../helpers/cli.js'
import { mosquittoPub, mosquittoSub, receiveThenStop, runMosquittoSub, startMosquittoPub } from './support/mosquitto.js'

const dirs: string[] = []
async function dataDir (): Promise<string> {
  const dir = await tempDataDir()
  dirs.push(dir)
  return dir
}

async function until (predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/**
 * `work`, or an error naming `what` once `ms` have passed. The kill -9 tests wait on processes (a publisher to stop, a
 * subscriber to exit, the broker to die): each wait has a deadline of its own, so a stall fails naming its step,
 * not as the test's timeout with nothing to say which step it was (as it once did on a loaded machine).
 */
async function within<T> (work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`timed out after ${ms} ms: ${what}`)) }, ms) })
  try {
    return await Promise.race([work, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Ends a mosquitto_sub whose output is complete (it printed its last expected line; stdout keeps the order of what
 * it printed). SIGTERM first; mosquitto_sub's SIGTERM handler calls mosquitto_disconnect_v5, which takes
 * libmosquitto's mutexes and logs, so a signal landing while the client holds one of them (busy acknowledging a burst
 * of queued messages) deadlocks it for good (eclipse-mosquitto/mosquitto#3175, in Debian's 2.0.11): one CI run
 * waited 10 s for that exit after every message had arrived. Not exited within 3 s, it is killed.
 */
async function stopSubscriber (sub: { kill: (signal?: NodeJS.Signals) => void, exited: Promise<unknown> }): Promise<void> {
  sub.kill('SIGTERM')
  try {
    await within(sub.exited, 3_000, 'mosquitto_sub to exit on SIGTERM')
  } catch {
    sub.kill('SIGKILL')
    await within(sub.exited, 5_000, 'mosquitto_sub to exit on SIGKILL')
  }
}

/** Payloads of -v lines on one topic. */
function payloads (lines: string[], topic: string): string[] {
  return lines.filter(l => l.startsWith(topic + ' ')).map(l => l.slice(topic.length + 1))
}

function countOf (list: string[]): Map<string, number> {
  const m = new Map<string, number>()
  for (const x of list) m.set(x, (m.get(x) ?? 0) + 1)
  return m
}

beforeAll(async () => { await ensureBuilt() }, 180_000)
// The first describe shares one broker between its tests: after each test only the clients go.
afterEach(async () => { await killAllChildren('client') })
afterAll(async () => {
  await killAllChildren()
  await Promise.all(dirs.map(removeDir))
})

describe('one running broker', () => {
  let cli: RunningCli
  let port: number
  beforeAll(async () => {
    cli = await startCli(startArgs(await dataDir()))
    port = cli.ports.mqtt
  })
  afterAll(async () => {
    if (cli !== undefined) expect(await cli.stop('SIGTERM')).toBe(0)
  })

  it('mosquitto_sub -t "#" -v receives what mosquitto_pub sends at QoS 0, 1 and 2, each at min(publish, granted) QoS', async () => {
    const all = mosquittoSub(port, ['-t', '#', '-v', '-q', '2'])
    const qos1 = mosquittoSub(port, ['-t', 'e2e/qos/#', '-v', '-q', '1'])
    expect(await all.subscribed).toEqual([2])
    expect(await qos1.subscribed).toEqual([1])
    for (const qos of [0, 1, 2]) {
      const r = await mosquittoPub(port, ['-t', `e2e/qos/q${qos}`, '-m', `payload at qos ${qos}`, '-q', String(qos)])
      expect(r.code, r.stderr).toBe(0)
    }
    const expected = ['e2e/qos/q0 payload at qos 0', 'e2e/qos/q1 payload at qos 1', 'e2e/qos/q2 payload at qos 2']
    await all.waitFor(() => all.messages().filter(l => l.startsWith('e2e/qos/')).length >= 3, 'three messages on #')
    await qos1.waitForMessages(3)
    expect(all.messages().filter(l => l.startsWith('e2e/qos/')).sort()).toEqual(expected)
    expect(qos1.messages().sort()).toEqual(expected)

    const qosByTopic = (sub: typeof all): Record<string, number> =>
      Object.fromEntries(sub.publishes().filter(p => p.topic.startsWith('e2e/qos/')).map(p => [p.topic, p.qos]))
    expect(qosByTopic(all)).toEqual({ 'e2e/qos/q0': 0, 'e2e/qos/q1': 1, 'e2e/qos/q2': 2 })
    expect(qosByTopic(qos1)).toEqual({ 'e2e/qos/q0': 0, 'e2e/qos/q1': 1, 'e2e/qos/q2': 1 })
    // Each message exactly once.
    expect(all.publishes().filter(p => p.topic.startsWith('e2e/qos/'))).toHaveLength(3)
  })

  it('a retained message (-r) reaches a later subscriber with the retain flag, and -r -n clears it', async () => {
    const set = await mosquittoPub(port, ['-t', 'e2e/retained/a', '-m', 'kept value', '-r', '-q', '1'])
    expect(set.code, set.stderr).toBe(0)

    const later = await runMosquittoSub(port, ['-t', 'e2e/retained/#', '-v', '-C', '1', '-W', '5'])
    expect(later.code, later.stdout + later.stderr).toBe(0)
    expect(later.messages).toEqual(['e2e/retained/a kept value'])
    expect(later.publishes).toEqual([{ topic: 'e2e/retained/a', qos: 0, retain: true, dup: false }])

    const clear = await mosquittoPub(port, ['-t', 'e2e/retained/a', '-r', '-n', '-q', '1'])
    expect(clear.code, clear.stderr).toBe(0)

    // Nothing retained any more: the subscriber times out (-W 1) without a message.
    const after = await runMosquittoSub(port, ['-t', 'e2e/retained/#', '-v', '-C', '1', '-W', '1'])
    expect(after.messages).toEqual([])
    expect(after.publishes).toEqual([])
    expect(after.code).not.toBe(0)
  })

  it('the will of a client killed with SIGKILL reaches another subscriber; a clean disconnect sends no will', async () => {
    const watcher = mosquittoSub(port, ['-t', 'e2e/will/#', '-v', '-q', '1'])
    await watcher.subscribed

    // -E: subscribes, then disconnects cleanly (DISCONNECT), so its will must be discarded.
    const clean = await runMosquittoSub(port, ['-t', 'e2e/unused', '-E', '-i', 'e2e-will-clean',
      '--will-topic', 'e2e/will/clean', '--will-payload', 'clean client will', '--will-qos', '1'])
    expect(clean.code, clean.stdout + clean.stderr).toBe(0)

    const crasher = mosquittoSub(port, ['-t', 'e2e/unused', '-i', 'e2e-will-crash',
      '--will-topic', 'e2e/will/crash', '--will-payload', 'crashed client will', '--will-qos', '1'])
    await crasher.subscribed
    crasher.kill('SIGKILL')

    await watcher.waitForMessages(1)
    // The clean client went first, so its will would have arrived first.
    expect(watcher.messages()).toEqual(['e2e/will/crash crashed client will'])
    expect(watcher.publishes()[0]).toMatchObject({ topic: 'e2e/will/crash', qos: 1 })
  })

  it('mosquitto_sub -t "#" (or "+/#") sees no $SYS message; -t "$SYS/#" does; a client cannot publish to $SYS', async () => {
    const all = mosquittoSub(port, ['-t', '#', '-v'])
    const plus = mosquittoSub(port, ['-t', '+/#', '-v'])
    const sys = mosquittoSub(port, ['-t', '$SYS/#', '-v'])
    await all.subscribed
    await plus.subscribed
    await sys.subscribed

    // Acknowledged (mosquitto_pub exits 0) but dropped.
    const fake = await mosquittoPub(port, ['-t', '$SYS/e2e/fake', '-m', 'from a client', '-q', '1'])
    expect(fake.code, fake.stderr).toBe(0)
    const marker = await mosquittoPub(port, ['-t', 'e2e/sys/marker', '-m', 'marker', '-q', '1', '-i', 'e2e-sys-marker'])
    expect(marker.code, marker.stderr).toBe(0)

    await all.waitForMessage('e2e/sys/marker marker')
    await plus.waitForMessage('e2e/sys/marker marker')
    // The broker's own $SYS messages about the marker's client: proof that $SYS messages were flowing meanwhile.
    await sys.waitFor(() => sys.messages().some(l => /^\$SYS\/[^/ ]+\/disconnect\/clients e2e-sys-marker$/.test(l)), '$SYS disconnect/clients for the marker client')
    expect(sys.messages().some(l => /^\$SYS\/[^/ ]+\/new\/clients e2e-sys-marker$/.test(l))).toBe(true)

    expect(all.messages().filter(l => l.startsWith('$'))).toEqual([])
    expect(all.publishes().filter(p => p.topic.startsWith('$'))).toEqual([])
    expect(plus.messages().filter(l => l.startsWith('$'))).toEqual([])
    expect(sys.messages().filter(l => l.startsWith('$SYS/e2e/fake'))).toEqual([])
    expect(cli.logs.some(l => l.msg === 'publish dropped' && l.topic === '$SYS/e2e/fake' && l.reason === 'reserved-topic')).toBe(true)
  })
})

describe('persistent sessions (mosquitto_sub -c -i <id> -q 1 / -q 2)', () => {
  const N = 20

  it.each(['no restart', 'graceful restart (SIGTERM)', 'crash (kill -9) and restart'] as const)(
    'messages published while the subscriber is away all arrive when it comes back: %s', async restart => {
      const dir = await dataDir()
      let cli = await startCli(startArgs(dir))
      const tag = restart.split(' ')[0].replace(/\W/g, '')
      const sessions = [1, 2].map(qos => ({ qos, id: `e2e-${tag}-q${qos}`, topic: `e2e/durable/${tag}/q${qos}` }))
      const subArgs = (s: typeof sessions[number]): string[] => ['-c', '-i', s.id, '-q', String(s.qos), '-t', s.topic, '-v']

      // Subscribe, then go away (-E: exit once SUBACK arrived).
      for (const s of sessions) {
        const r = await runMosquittoSub(cli.ports.mqtt, [...subArgs(s), '-E'])
        expect(r.code, r.stdout + r.stderr).toBe(0)
      }
      // A retained message, which must survive the restart too.
      const retainedTopic = `e2e/durable/${tag}/retained`
      const retained = await mosquittoPub(cli.ports.mqtt, ['-q', '1', '-r', '-t', retainedTopic, '-m', 'retained value'])
      expect(retained.code, retained.stderr).toBe(0)
      // N acknowledged publishes per session, both QoS at once.
      const expected = Array.from({ length: N }, (_, i) => `message ${i + 1}`)
      await Promise.all(sessions.map(async s => {
        for (const m of expected) {
          const r = await mosquittoPub(cli.ports.mqtt, ['-q', String(s.qos), '-t', s.topic, '-m', m])
          expect(r.code, `mosquitto_pub ${m}: ${r.stderr}`).toBe(0)
        }
      }))

      if (restart === 'graceful restart (SIGTERM)') {
        expect(await cli.stop('SIGTERM')).toBe(0)
        cli = await startCli(startArgs(dir))
      } else if (restart === 'crash (kill -9) and restart') {
        await cli.kill9()
        cli = await startCli(startArgs(dir))
      }

      for (const s of sessions) {
        const r = await receiveThenStop(cli.ports.mqtt, subArgs(s), N)
        expect(r.code, `QoS ${s.qos} session: ${r.stdout}${r.stderr}`).toBe(0)
        expect(payloads(r.messages, s.topic).sort(), `QoS ${s.qos} session`).toEqual([...expected].sort())
        expect(r.publishes.every(p => p.qos === s.qos), `QoS ${s.qos} session delivered at ${JSON.stringify(r.publishes.map(p => p.qos))}`).toBe(true)
      }

      const later = await runMosquittoSub(cli.ports.mqtt, ['-t', retainedTopic, '-v', '-C', '1', '-W', '5'])
      expect(later.messages, 'the retained message').toEqual([`${retainedTopic} retained value`])
      expect(later.publishes[0]?.retain).toBe(true)

      // Nothing is delivered again once acknowledged: after one more message, that message is the first to arrive.
      for (const s of sessions) {
        const pub = await mosquittoPub(cli.ports.mqtt, ['-q', String(s.qos), '-t', s.topic, '-m', 'after'])
        expect(pub.code).toBe(0)
        const r = await runMosquittoSub(cli.ports.mqtt, [...subArgs(s), '-C', '1', '-W', '10'])
        expect(r.code, r.stdout + r.stderr).toBe(0)
        expect(r.messages, `QoS ${s.qos} session after the queue was drained`).toEqual([`${s.topic} after`])
      }
      expect(await cli.stop('SIGTERM')).toBe(0)
    })

  it('kill -9 while publishers are busy: every acknowledged QoS 1 and QoS 2 message arrives after the restart, QoS 2 exactly once', async () => {
    const dir = await dataDir()
    let cli = await startCli(startArgs(dir))
    const sessions = [1, 2].map(qos => ({ qos, id: `e2e-crash-q${qos}`, topic: `e2e/crash/q${qos}` }))
    const subArgs = (s: typeof sessions[number]): string[] => ['-c', '-i', s.id, '-q', String(s.qos), '-t', s.topic, '-v']
    for (const s of sessions) {
      const r = await runMosquittoSub(cli.ports.mqtt, [...subArgs(s), '-E'])
      expect(r.code, r.stdout + r.stderr).toBe(0)
    }

    const { sent, acked, stop } = publishUntilStopped(cli.ports.mqtt, sessions)
    await until(() => acked[1].length >= 15 && acked[2].length >= 15, '15 acknowledged publishes per QoS')
    await within(cli.kill9(), 10_000, 'the broker to die of SIGKILL')
    await within(stop(), 10_000, 'the publishers to stop after the kill')

    cli = await startCli(startArgs(dir))
    for (const s of sessions) {
      const end = await mosquittoPub(cli.ports.mqtt, ['-q', String(s.qos), '-t', s.topic, '-m', 'end'])
      expect(end.code, `mosquitto_pub 'end' after the restart: ${end.stderr}`).toBe(0)
    }
    for (const s of sessions) {
      const sub = mosquittoSub(cli.ports.mqtt, subArgs(s))
      await sub.waitForMessage(`${s.topic} end`, 15_000).catch((err: Error) => {
        throw new Error(`${err.message}\nbroker log tail: ${JSON.stringify(cli.logs.slice(-10))}`)
      })
      await stopSubscriber(sub)
      expectEveryAckedOnce(s.qos, payloads(sub.messages(), s.topic).filter(p => p !== 'end'), sent[s.qos], acked[s.qos])
    }
    expect(await cli.stop('SIGTERM')).toBe(0)
  }, 120_000)

  it('kill -9 while connected subscribers are receiving: after a restart on the same port they reconnect on their own and get every acknowledged message, QoS 2 exactly once', async () => {
    const dir = await dataDir()
    let cli = await startCli(startArgs(dir))
    const port = cli.ports.mqtt
    const sessions = [1, 2].map(qos => ({ qos, id: `e2e-live-q${qos}`, topic: `e2e/live/q${qos}` }))
    // mosquitto_sub stays connected and, when the connection drops, reconnects to the same host and port with the
    // same session (-c): the client side of the session survives too.
    const subs = sessions.map(s => mosquittoSub(port, ['-c', '-i', s.id, '-q', String(s.qos), '-t', s.topic, '-v']))
    await Promise.all(subs.map(async sub => await sub.subscribed))

    const { sent, acked, stop } = publishUntilStopped(port, sessions)
    await until(() => sessions.every((s, i) => acked[s.qos].length >= 20 && subs[i].messages().length >= 10), 'publishes acknowledged and delivered')
    await within(cli.kill9(), 10_000, 'the broker to die of SIGKILL')
    await within(stop(), 10_000, 'the publishers to stop after the kill')

    const sameMqttPort = startArgs(dir)
    sameMqttPort[sameMqttPort.indexOf('--mqtt-port') + 1] = String(port)
    cli = await startCli(sameMqttPort)
    expect(cli.ports.mqtt).toBe(port)
    for (const s of sessions) {
      const end = await mosquittoPub(port, ['-q', String(s.qos), '-t', s.topic, '-m', 'end'])
      expect(end.code, `mosquitto_pub 'end' after the restart: ${end.stderr}`).toBe(0)
    }
    for (const [i, s] of sessions.entries()) {
      const sub = subs[i]
      await sub.waitForMessage(`${s.topic} end`, 20_000)
      expectEveryAckedOnce(s.qos, payloads(sub.messages(), s.topic).filter(p => p !== 'end'), sent[s.qos], acked[s.qos])
    }
    expect(await cli.stop('SIGTERM')).toBe(0)
  }, 120_000)
})

/**
 * One mosquitto_pub after another per session until stop(); `acked` holds the payloads whose mosquitto_pub exited 0,
 * that is, that the broker acknowledged.
 */
function publishUntilStopped (port: number, sessions: Array<{ qos: number, topic: string }>): {
  sent: Record<number, string[]>, acked: Record<number, string[]>, stop: () => Promise<void>
} {
  const sent: Record<number, string[]> = { 1: [], 2: [] }
  const acked: Record<number, string[]> = { 1: [], 2: [] }
  const inFlight: Record<number, Proc | undefined> = {}
  let publishing = true
  const loops = sessions.map(async s => {
    for (let i = 1; publishing; i++) {
      const payload = `m${i}`
      sent[s.qos].push(payload)
      const p = startMosquittoPub(port, ['-q', String(s.qos), '-t', s.topic, '-m', payload])
      inFlight[s.qos] = p
      const exit = await p.exited
      if (exit.code !== 0) break
      acked[s.qos].push(payload)
    }
  })
  return {
    sent,
    acked,
    stop: async () => {
      publishing = false
      // A mosquitto_pub whose broker died keeps trying to reconnect; its message was not acknowledged.
      for (const s of sessions) inFlight[s.qos]?.kill('SIGKILL')
      await Promise.all(loops)
    }
  }
}

/** Every acknowledged message arrived, nothing arrived that was not sent, and QoS 2 ones exactly once. */
function expectEveryAckedOnce (qos: number, got: string[], sent: string[], acked: string[]): void {
  const missing = acked.filter(p => !got.includes(p))
  expect(missing, `QoS ${qos}: acknowledged but never delivered (acked ${acked.length}, got ${got.length})`).toEqual([])
  expect(got.filter(p => !sent.includes(p)), `QoS ${qos}: delivered but never sent`).toEqual([])
  if (qos === 2) {
    const dups = [...countOf(got)].filter(([, n]) => n > 1)
    expect(dups, 'QoS 2 messages delivered more than once').toEqual([])
  }
}
