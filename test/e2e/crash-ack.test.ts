import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, endClient, sleep } from '../helpers/clients.js'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir } from '../helpers/cli.js'
import { publishUntilKilledOnAck } from './support/kill-on-ack.js'

/**
 * The durability contract at its sharpest point: the broker is killed (SIGKILL) in the very callback that receives
 * a PUBACK/PUBCOMP, while more publishes are in flight. Every message the publisher saw acknowledged must reach the
 * persistent subscriber after a restart; QoS 2 ones exactly once. Bare aedes sends the QoS 1 PUBACK before storing
 * the message, so it loses some of them here.
 */
describe('kill -9 right after an acknowledgement', () => {
  beforeAll(async () => { await ensureBuilt() }, 120_000)
  afterAll(async () => { await killAllChildren() })

  it.each([1, 2] as const)('loses no acknowledged QoS %i message', async (qos) => {
    const dataDir = await tempDataDir()
    try {
      for (let round = 0; round < 3; round++) {
        let cli = await startCli(startArgs(dataDir))
        const url = `mqtt://127.0.0.1:${cli.ports.mqtt}`
        if (round === 0) {
          const sub = await connectClient(url, { clientId: `crash-sub-${qos}`, clean: false })
          await sub.subscribeAsync('crash/#', { qos })
          await endClient(sub)
        }
        const pub = await connectClient(url, { clientId: `crash-pub-${round}` })
        pub.on('error', () => {})
        const killAt = 150 + Math.floor(Math.random() * 300)
        const acked = await publishUntilKilledOnAck(pub, { topic: `crash/${round}`, qos, pid: cli.pid, killAt, first: round * 10_000 })
        await cli.kill9()
        await endClient(pub, true)

        cli = await startCli(startArgs(dataDir))
        const sub = await connectClient(`mqtt://127.0.0.1:${cli.ports.mqtt}`, { clientId: `crash-sub-${qos}`, clean: false })
        expect(sub.sessionPresent).toBe(true)
        let seen = -1
        while (seen !== sub.received.length) {
          seen = sub.received.length
          await sleep(500)
        }
        const got = sub.received.map(m => Number(m.payload))
        const missing = acked.filter(seq => !got.includes(seq))
        expect(missing, `round ${round}: ${missing.length} of ${acked.length} acknowledged messages lost`).toEqual([])
        if (qos === 2) expect(got.length, 'QoS 2 duplicates').toBe(new Set(got).size)
        await endClient(sub)
        await cli.stop()
      }
    } finally {
      await removeDir(dataDir)
    }
  }, 90_000)
})
