import { finished } from 'node:stream'
import type { Client, PublishPacket } from 'aedes'
import type { ConnectStep } from '../hook-chain.js'
import type { CulexStore } from '../store/index.js'
import type { Logger } from '../log/logger.js'
import { willDelaySeconds } from '../store/wills.js'
import { NEVER_EXPIRES } from '../store/session-records.js'
import { internals, type BrokerInternals, type ClientInternals } from '../protocol/aedes-internals.js'
import { v5Of } from '../protocol/v5/connection.js'

/** The longest a timer is set for (Node's limit is about 24.8 days); a later will is looked at again then. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * MQTT 5 Will Delay Interval, durable (MQTT 5 §3.1.3.2.2): a will is published when its delay is over or when the
 * session ends, whichever comes first, and not at all if a connection with the same client id is made before. aedes
 * 1.2 publishes a will as the connection closes; for a delayed one, the connection's close takes it from aedes
 * (`client.will`, which aedes reads once the close has unsubscribed the client) and the store records when it is
 * due on the will itself (`publishAt`), so a restart or a `kill -9` in between changes nothing: at start every
 * delayed will is set again, and one whose client was connected at a crash counts from the start. The store keeps
 * delayed wills out of what aedes publishes for a dead broker (wills.ts). The client's next connection cancels it:
 * aedes replaces the stored will during that CONNECT, and the 'client' event clears the timer and the due time.
 */
export function delayWills (broker: BrokerInternals, store: CulexStore, log: Logger, opts: { sharedStore: boolean } = { sharedStore: false }): {
  watchClose: ConnectStep
  start: () => Promise<{ close: () => void }>
  adopt: (brokerId: string) => Promise<number>
} {
  const timers = new Map<string, NodeJS.Timeout>()
  let closed = false

  const cancel = (clientId: string): void => {
    clearTimeout(timers.get(clientId))
    timers.delete(clientId)
  }

  /**
   * A store the nodes of a cluster share holds every node's wills: one another run wrote is that run's to time (its
   * client may be connected there now, or have left it since, with a will that run times), not this node's.
   */
  const ours = (will: Record<string, unknown>): boolean => !opts.sharedStore || will.brokerId === broker.id

  const publish = async (clientId: string): Promise<void> => {
    timers.delete(clientId)
    const will = await store.getWill({ id: clientId })
    // back since (a connection cancels its delayed will), or due later: a newer will of the same client; in a cluster
    // also a will of the client's newer connection on another node, which that node publishes (this one did twice)
    if (will === undefined || typeof will.publishAt !== 'number' || broker.clients[clientId] !== undefined || !ours(will)) return
    if (will.publishAt > Date.now()) {
      schedule(clientId, will.publishAt)
      return
    }
    const { publishAt: _publishAt, ...packet } = will
    const refused = await new Promise<Error | null | undefined>(resolve => { broker.authorizePublish(null, packet as unknown as PublishPacket, resolve) })
    if (refused == null) await new Promise<void>(resolve => { broker.publish(packet as unknown as PublishPacket, () => resolve()) })
    await store.delWill({ id: clientId, brokerId: will.brokerId as string | undefined })
    log.info({ clientId, topic: packet.topic, published: refused == null }, 'delayed will due')
  }

  const schedule = (clientId: string, publishAt: number): void => {
    cancel(clientId)
    if (closed) return
    const wait = publishAt - Date.now()
    const timer = setTimeout(() => {
      if (wait > MAX_TIMER_MS) {
        schedule(clientId, publishAt)
        return
      }
      publish(clientId).catch((err: unknown) => log.error({ err, clientId }, 'delayed will failed'))
    }, Math.max(0, Math.min(wait, MAX_TIMER_MS)))
    timer.unref()
    timers.set(clientId, timer)
  }

  /** Seconds until the will is due from the moment its client goes: the delay, or the session's end if sooner. */
  const dueInSeconds = (will: Record<string, unknown>, sessionExpiry: number): number => Math.min(willDelaySeconds(will), sessionExpiry)

  const watchClose: ConnectStep = (client) => {
    const connection = v5Of(client)
    if (connection === undefined) return undefined
    const c = internals(client)
    closeThroughInstance(c)
    const close = client.close.bind(client)
    ;(client as { close: Client['close'] }).close = (done?: () => void) => {
      const will = c.will
      if (will != null && c._disconnected !== true && client.id !== null) {
        const delay = dueInSeconds(will as unknown as Record<string, unknown>, connection.sessionExpiry)
        if (delay > 0) {
          c.will = null
          const publishAt = Date.now() + delay * 1000
          const clientId = client.id
          store.willDue(clientId, publishAt).then(() => { schedule(clientId, publishAt) }, (err: unknown) => {
            log.error({ err, clientId }, 'delayed will not recorded')
          })
        }
      }
      close(done)
    }
    return undefined
  }

  const start = async (): Promise<{ close: () => void }> => {
    const startedAt = Date.now()
    for (const will of await store.delayedWills()) {
      if (!ours(will)) continue
      const clientId = String(will.clientId)
      let publishAt = will.publishAt as number | undefined
      if (publishAt === undefined) {
        // connected at a crash: gone since this start; a session without an interval (MQTT 5 clean) has ended
        const expiry = (await store.sessionInfo(clientId) as { expirySeconds?: number } | undefined)?.expirySeconds ?? 0
        publishAt = startedAt + dueInSeconds(will, expiry === NEVER_EXPIRES ? Infinity : expiry) * 1000
        await store.willDue(clientId, publishAt)
      }
      schedule(clientId, publishAt)
    }
    broker.on('client', client => {
      cancel(client.id)
      // aedes has replaced the stored will during this CONNECT; a take-over closes the old connection after that,
      // and its close may have marked the new will as due
      store.getWill({ id: client.id })
        .then(async will => { if (will?.publishAt !== undefined) await store.willDue(client.id, undefined) })
        .catch((err: unknown) => log.error({ err, clientId: client.id }, 'delayed will not cancelled'))
    })
    return {
      close: () => {
        closed = true
        for (const id of [...timers.keys()]) cancel(id)
      }
    }
  }

  /**
   * Cluster mode: a dead run's delayed wills become this run's (the one survivor that settles the dead run calls
   * this), due as if their clients had gone now; aedes' dead-broker path leaves delayed wills out.
   */
  const adopt = async (brokerId: string): Promise<number> => {
    let adopted = 0
    for (const will of await store.delayedWills()) {
      if (will.brokerId !== brokerId) continue
      const clientId = String(will.clientId)
      const expiry = (await store.sessionInfo(clientId) as { expirySeconds?: number } | undefined)?.expirySeconds ?? 0
      const publishAt = (will.publishAt as number | undefined) ?? Date.now() + dueInSeconds(will, expiry === NEVER_EXPIRES ? Infinity : expiry) * 1000
      const { brokerId: _dead, ...packet } = will
      await store.putWill({ id: clientId }, { ...packet, publishAt })
      schedule(clientId, publishAt)
      adopted++
    }
    if (adopted > 0) log.info({ brokerId, adopted }, 'delayed wills of a dead node taken over')
    return adopted
  }

  return { watchClose, start, adopt }
}

/**
 * aedes closes a client from its connection's 'end' and from an end-of-stream watch, both given close as bound when
 * the client was created (lib/client.js), so a close wrapped on the client later sees only the other closes (a socket
 * error, a protocol violation, a take-over): a WebSocket closed, or a TCP connection ended without DISCONNECT,
 * published a delayed will at once. Both are registered again to call the client's close as it is now.
 */
function closeThroughInstance (c: ClientInternals): void {
  const conn = c.conn
  const close = (): void => { c.close() }
  c._eos()
  c._eos = finished(conn, close)
  for (const listener of conn.listeners('end')) {
    if (listener.name !== 'bound close') continue
    conn.removeListener('end', listener as () => void)
    conn.on('end', close)
  }
}
