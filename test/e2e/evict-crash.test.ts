import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectClient, endClient, waitFor } from '../helpers/clients.js'
import { ensureBuilt, killAllChildren, removeDir, startArgs, startCli, tempDataDir } from '../helpers/cli.js'
import { publishUntilKilledOnAck } from './support/kill-on-ack.js'

const env = {
  CULEX_SESSIONS_MAX_QUEUED_MESSAGES: '5',
  CULEX_SHARED_SUBSCRIPTIONS_MAX_QUEUED_MESSAGES: '5',
  CULEX_SESSIONS_OVERFLOW_POLICY: 'dropOldest'
}

/**
 * Every dead letter of `reason`, page by page: a page holds at most 1000 (the admin API's cap on `limit`), newest
 * first, and a round that runs past about 505 acknowledged publishes leaves more than 1000 here (each of the two
 * queues dead-letters all but its last 5), so one page would miss the oldest and report them lost.
 */
async function listDeadLetters (admin: string, reason: string): Promise<Array<{ id: string, target: string }>> {
  const all: Array<{ id: string, target: string }> = []
  for (;;) {
    const page = await (await fetch(`${admin}/api/dead-letters?reason=${reason}&limit=1000&offset=${all.length}`)).json() as { items: Array<{ id: string, target: string }>, total: number }
    all.push(...page.items)
    if (page.items.length === 0 || all.length >= page.total) {
      expect(all.length, 'dead letters listed').toBe(page.total)
      return all
    }
  }
}

/**
 * Queues that overflow (dropOldest) while the broker is killed (SIGKILL) at seeded moments: every acknowledged
 * message must be, after the restart, either still queued or in the dead-letter log, for the persistent session
 * and for the durable shared group alike. The delete of an evicted message and its dead letter are one batch.
 */
describe('kill -9 while full queues evict into the dead-letter log', () => {
  beforeAll(async () => { await ensureBuilt() }, 120_000)
  afterAll(async () => { await killAllChildren() })

  it('no acknowledged message is in neither the queue nor the dead-letter log', async () => {
    let seed = 4242
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    for (let round = 0; round < 3; round++) {
      const dataDir = await tempDataDir()
      try {
        let cli = await startCli(startArgs(dataDir), env)
        let url = `mqtt://127.0.0.1:${cli.ports.mqtt}`
        for (const [clientId, filter] of [['ev-sub', 'ev/#'], ['ev-member', '$share/g/ev/#']]) {
          const c = await connectClient(url, { clientId, clean: false })
          await c.subscribeAsync(filter, { qos: 1 })
          await endClient(c)
        }
        const pub = await connectClient(url, { clientId: 'ev-pub' })
        pub.on('error', () => {})
        const killAt = 100 + Math.floor(random() * 400)
        const acked = await publishUntilKilledOnAck(pub, { topic: 'ev/x', qos: 1, pid: cli.pid, killAt })
        await cli.kill9()
        await endClient(pub, true)

        cli = await startCli(startArgs(dataDir), env)
        url = `mqtt://127.0.0.1:${cli.ports.mqtt}`
        const admin = `http://127.0.0.1:${cli.ports.admin}`
        const dead = new Map<string, Set<number>>()
        for (const { id, target } of await listDeadLetters(admin, 'queue-full')) {
          const envelope = await (await fetch(`${admin}/api/dead-letters/${id}`)).json() as { payload: string }
          const set = dead.get(target) ?? new Set<number>()
          set.add(Number(Buffer.from(envelope.payload, 'base64').toString()))
          dead.set(target, set)
        }
        for (const [clientId, target] of [['ev-sub', 'ev-sub'], ['ev-member', '$share/g/ev/#']]) {
          const c = await connectClient(url, { clientId, clean: false })
          const lost = (): number[] => {
            const queued = new Set(c.received.map(m => Number(m.payload)))
            return acked.filter(seq => !queued.has(seq) && dead.get(target)?.has(seq) !== true)
          }
          // A queue a crash left over its limit (evictions not yet committed) holds dozens: on a busy machine their
          // delivery can pause longer than any fixed quiet time, so wait for the messages themselves.
          await waitFor(() => lost().length === 0, `${target}'s queued messages`, 10_000).catch(() => {})
          expect(lost(), `round ${round} (kill after ${killAt}), ${target}: acknowledged messages neither queued nor dead-lettered`).toEqual([])
          await endClient(c)
        }
        await cli.stop()
      } finally {
        await removeDir(dataDir)
      }
    }
  }, 120_000)
})
