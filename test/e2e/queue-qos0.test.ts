import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir } from '../helpers/cli.js'
import { publishUntilKilledOnAck } from './support/kill-on-ack.js'
import { mosquittoPub, runMosquittoSub } from './support/mosquitto.js'

/**
 * sessions.queueQos0 (CULEX_SESSIONS_QUEUE_QOS0=true) with the built culex command, across kill -9: what a user of
 * `mosquitto_sub -c -q 0` gets back, and the durability contract for QoS 1 publishes to a QoS 0 subscription.
 */
describe('sessions.queueQos0 across kill -9', () => {
  const env = { CULEX_SESSIONS_QUEUE_QOS0: 'true' }
  const dirs: string[] = []
  beforeAll(async () => { await ensureBuilt() }, 180_000)
  afterAll(async () => {
    await killAllChildren()
    await Promise.all(dirs.map(removeDir))
  })
  const dataDir = async (): Promise<string> => {
    const dir = await tempDataDir()
    dirs.push(dir)
    return dir
  }

  it('mosquitto_sub -c -q 0 gets the QoS 0 messages published while it was away, in order, after a crash', async () => {
    const dir = await dataDir()
    let cli = await startCli(startArgs(dir), env)
    const sub = ['-c', '-i', 'e2e-q0', '-q', '0', '-t', 'e2e/q0/#', '-v']
    const away = await runMosquittoSub(cli.ports.mqtt, [...sub, '-E'])
    expect(away.code, away.stdout + away.stderr).toBe(0)
    for (let i = 1; i <= 5; i++) {
      const r = await mosquittoPub(cli.ports.mqtt, ['-q', '0', '-t', `e2e/q0/${i}`, '-m', `m${i}`])
      expect(r.code, r.stderr).toBe(0)
    }
    // Acknowledged only once it is queued, and with it everything queued before it.
    const end = await mosquittoPub(cli.ports.mqtt, ['-q', '1', '-t', 'e2e/q0/end', '-m', 'end'])
    expect(end.code, end.stderr).toBe(0)
    await cli.kill9()

    cli = await startCli(startArgs(dir), env)
    const back = await runMosquittoSub(cli.ports.mqtt, [...sub, '-C', '6', '-W', '10'])
    expect(back.code, back.stdout + back.stderr).toBe(0)
    expect(back.messages).toEqual(['e2e/q0/1 m1', 'e2e/q0/2 m2', 'e2e/q0/3 m3', 'e2e/q0/4 m4', 'e2e/q0/5 m5', 'e2e/q0/end end'])
    expect(back.publishes.map(p => p.qos)).toEqual([0, 0, 0, 0, 0, 0])
    // Sent once: a message queued after them is the first the next visit gets.
    const after = await mosquittoPub(cli.ports.mqtt, ['-q', '1', '-t', 'e2e/q0/after', '-m', 'after'])
    expect(after.code, after.stderr).toBe(0)
    const again = await runMosquittoSub(cli.ports.mqtt, [...sub, '-C', '1', '-W', '10'])
    expect(again.messages).toEqual(['e2e/q0/after after'])
    expect(await cli.stop('SIGTERM')).toBe(0)
  })

  it('loses no acknowledged QoS 1 message to a QoS 0 subscription when killed right after a PUBACK', async () => {
    const dir = await dataDir()
    let cli = await startCli(startArgs(dir), env)
    const url = (): string => `mqtt://127.0.0.1:${cli.ports.mqtt}`
    const first = await connectClient(url(), { clientId: 'e2e-q0-crash', clean: false })
    await first.subscribeAsync('crash0/#', { qos: 0 })
    await endClient(first)

    const pub = await connectClient(url(), { clientId: 'e2e-q0-crash-pub' })
    pub.on('error', () => {})
    const acked = await publishUntilKilledOnAck(pub, { topic: 'crash0/x', qos: 1, pid: cli.pid, killAt: 100 + Math.floor(Math.random() * 200) })
    await cli.kill9()
    await endClient(pub, true)

    cli = await startCli(startArgs(dir), env)
    const sub = await connectClient(url(), { clientId: 'e2e-q0-crash', clean: false })
    expect(sub.sessionPresent).toBe(true)
    const got = new Set<number>()
    const missing = (): number[] => {
      for (const m of sub.received) got.add(Number(m.payload))
      return acked.filter(seq => !got.has(seq))
    }
    await waitFor(() => missing().length === 0, 'every acknowledged message', 15_000).catch(() => {})
    expect(missing(), `acknowledged but lost, of ${acked.length} (${sub.received.length} received)`).toEqual([])
    expect(sub.received.every(m => m.qos === 0)).toBe(true)
    await endClient(sub)
    expect(await cli.stop('SIGTERM')).toBe(0)
  }, 60_000)
})
