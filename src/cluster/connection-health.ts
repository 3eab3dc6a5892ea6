import type { Redis } from 'ioredis'
import type { Logger } from '../log/logger.js'
import type { CulexStore } from '../store/contract.js'
import { probeLiveness } from './liveness.js'

export type ConnectionRole = 'commands' | 'subscriber' | 'reader' | 'groups'

export interface ConnectionHealth {
  /** Why the node cannot serve now (a connection lost or not answering); undefined when every one is fine. */
  problem: () => string | undefined
  /** How many of the node's connections are lost or not answering. */
  down: () => number
  /** Times each connection was lost and made again. */
  readonly reconnects: Record<ConnectionRole, number>
  /** The node is stopping: what its connections do from now on is no problem. */
  close: () => void
}

/**
 * The health of a node's connections to Redis (docs/cluster.md, "Redis unavailable"): one log line when a
 * connection is lost or stops answering and one when it is back, not per attempt (ioredis retries on its own);
 * /readyz says not ready meanwhile. A Redis that hangs closes nothing: a PING unanswered within `pingTimeoutMs`
 * counts the connection as lost until it answers (liveness.ts). The stream readers wait in XREAD BLOCK and take no
 * PING; the store's connection, which carries the enqueues, does, and counts while it is down too (the store logs
 * that itself): after a failover each connection comes back after its own back-off, the store's maybe last.
 */
export function watchConnections (
  conns: Record<ConnectionRole, Redis>,
  store: Pick<CulexStore, 'ping' | 'connectionLost'>,
  opts: { intervalMs: number, pingTimeoutMs: number },
  /** A connection is back: made again after it was lost, or answering again after it hung. */
  onBack: (how: 'reconnected' | 'answered') => void,
  log: Logger
): ConnectionHealth {
  const lost = new Map<string, string>()
  const reconnects: Record<ConnectionRole, number> = { commands: 0, subscriber: 0, reader: 0, groups: 0 }
  let closing = false
  const note = (role: string, why: string, msg: string): void => {
    if (closing) return
    if (!lost.has(role)) log.warn({ err: why, connection: role }, msg)
    lost.set(role, why)
  }
  for (const [role, conn] of Object.entries(conns) as Array<[ConnectionRole, Redis]>) {
    conn.on('error', (err: Error) => { note(role, err.message, 'cluster Redis connection lost; retrying') })
    conn.on('close', () => { note(role, 'connection closed', 'cluster Redis connection lost; retrying') })
    conn.on('ready', () => {
      if (!lost.delete(role)) return
      reconnects[role]++
      onBack('reconnected')
      log.info({ connection: role }, 'cluster Redis connection back')
    })
  }
  const pingable = (conn: Redis) => () => conn.status === 'ready' ? conn.ping() : undefined
  const liveness = probeLiveness([
    { role: 'commands', ping: pingable(conns.commands) },
    { role: 'subscriber', ping: pingable(conns.subscriber) },
    ...(store.ping === undefined ? [] : [{ role: 'store', ping: store.ping.bind(store) }])
  ], { intervalMs: opts.intervalMs, timeoutMs: opts.pingTimeoutMs }, {
    hung: (role, why) => { note(role, why, 'cluster Redis not answering; waiting for it') },
    answered: role => {
      if (!lost.delete(role)) return
      onBack('answered')
      log.info({ connection: role }, 'cluster Redis connection back')
    }
  })
  /** The connections down now: those lost or hung, and the store's while it reconnects. */
  const downNow = (): Map<string, string> => {
    const storeLost = closing ? undefined : store.connectionLost?.()
    if (storeLost === undefined || lost.has('store')) return lost
    return new Map([...lost, ['store', storeLost]])
  }
  return {
    problem: () => {
      const down = downNow()
      if (closing || down.size === 0) return undefined
      return `cluster Redis unreachable (${[...down].map(([role, why]) => `${role}: ${why}`).join('; ')})`
    },
    down: () => downNow().size,
    reconnects,
    close: () => {
      closing = true
      liveness.close()
    }
  }
}
