import type { Aedes, Client } from 'aedes'
import type { AuthenticateStep, ConnectStep, SubscribeStep } from '../hook-chain.js'
import type { CulexStore } from '../store/index.js'
import type { Logger } from '../log/logger.js'
import { internals, type BrokerInternals } from '../protocol/aedes-internals.js'
import { v5Of } from '../protocol/v5/connection.js'
import { expiresAt, expiryMs, type SessionClaim } from '../store/session-records.js'

const SYS_PREFIX = '$SYS/'

/**
 * Persistent-session bookkeeping aedes does not do: each clean=false connect and disconnect is recorded in the
 * store (so a session with no subscriptions still exists, and its idle time is known), and sessions whose client has
 * been gone longer than their expiry are removed with their queues: an MQTT 5 session after its own Session Expiry
 * Interval (at most `expiryMs`, docs/protocol.md "MQTT 5"), an MQTT 3.1.1 one after `expiryMs` (0 = never). The interval and
 * the disconnect time are in the store, so the expiry counts from the disconnect across restarts and crashes; the
 * removal runs when the next session is due, not on a fixed period.
 *
 * A session is never removed while a client with its id is connecting: aedes decides Session Present from the
 * session it reads early in the CONNECT, restores its subscriptions and only then registers the client. Removed in
 * between, the client got Session Present 1, live subscriptions the store no longer had, and no queue, so no QoS
 * 1/2 message ever reached it. `noteConnecting` (the first preConnect step) marks a connection from its CONNECT
 * until aedes registers it (the session is then connected, not idle) or it closes; a session removed before it is
 * read is answered with Session Present 0. That mark is this node's: in a cluster another node's expiry does not see
 * it. So before aedes reads the session, `startNewSession` claims it in the store (marked connected, in the step
 * that decides whether it is over), and the expiry removes a session only if the store still has it over
 * (`expireSession`): of a resume and an expiry on two nodes, one wins. A claimed connection that ends before it is
 * registered marks the session disconnected again.
 */
export function trackSessions (aedes: Aedes, store: CulexStore, opts: { expiryMs: number }, log: Logger): {
  noteConnecting: ConnectStep
  startNewSession: AuthenticateStep
  start: () => Promise<{ close: () => void, sweep: () => void }>
} {
  const connecting = new Map<string, Set<Client>>()
  // connections that claimed their session and are not registered yet; connections closed
  const claimed = new WeakSet<Client>()
  const closed = new WeakSet<Client>()
  const settled = (client: Client, clientId: string): void => {
    const of = connecting.get(clientId)
    if (of?.delete(client) === true && of.size === 0) connecting.delete(clientId)
  }
  // A claim whose connection ended before it was registered: the session is disconnected again (its expiry counts
  // from now), unless another connection of the client here, registered or on its way, holds it now.
  const release = (client: Client, clientId: string): void => {
    claimed.delete(client)
    if ((aedes as BrokerInternals).clients[clientId] === undefined && !connecting.has(clientId)) store.sessionConnected(clientId, false, Date.now())
  }
  const noteConnecting: ConnectStep = (client, packet) => {
    const clientId = packet.clientId
    if (packet.clean !== false || clientId === undefined || clientId === '') return undefined
    let of = connecting.get(clientId)
    if (of === undefined) connecting.set(clientId, of = new Set())
    of.add(client)
    client.conn.once('close', () => {
      closed.add(client)
      settled(client, clientId)
      if (claimed.has(client)) release(client, clientId)
    })
    return undefined
  }
  // A persistent CONNECT that starts a new session: MQTT 5 Clean Start 1 with a Session Expiry Interval (aedes is
  // handed a persistent CONNECT, so it keeps what a clean one drops), or a session that is over but not removed yet
  // (the expiry run skips a session whose client is connecting; one with an interval of 0 is over at the close, and
  // a client back a moment later must not resume it). The old session goes here: the last authenticate step, once
  // the client is let in (a refused CONNECT must not end anyone's session) and before aedes reads the session.
  const startNewSession: AuthenticateStep = (client) => {
    const clientId = client.id
    if (client.clean || clientId === null) return undefined
    if (v5Of(client)?.connect.cleanStart === true) return store.purgeSession(clientId).then(() => undefined)
    const settle = (found: SessionClaim): Promise<undefined> | undefined => {
      if (found === 'claimed') {
        claimed.add(client)
        // the claim came back after the connection had closed
        if (closed.has(client)) release(client, clientId)
      }
      return found === 'over' ? store.purgeSession(clientId).then(() => undefined) : undefined
    }
    const found = store.claimSession(clientId, opts.expiryMs, v5Of(client)?.sessionExpiry)
    return typeof found === 'string' ? settle(found) : found.then(settle)
  }

  const start = async (): Promise<{ close: () => void, sweep: () => void }> => {
    // A crash leaves sessions marked connected; none is connected before the listeners open. Their expiry counts
    // from this start, the first moment the broker knows they are gone.
    const startedAt = Date.now()
    for (const id of await store.listSessions()) {
      const info = await store.sessionInfo(id)
      if (info?.connectedAt !== undefined && info.disconnectedAt === undefined) store.sessionConnected(id, false, startedAt)
    }

    const expiry = expireSessions(aedes as BrokerInternals, store, { ...opts, isConnecting: id => connecting.has(id) }, log)
    aedes.on('client', client => {
      if (!client.clean) store.sessionConnected(client.id, true, Date.now(), v5Of(client)?.sessionExpiry)
      claimed.delete(client)
      settled(client, client.id)
    })
    aedes.on('clientDisconnect', client => {
      if (client.clean) return
      const now = Date.now()
      const seconds = v5Of(client)?.sessionExpiry
      store.sessionConnected(client.id, false, now, seconds)
      const ms = expiryMs(seconds, opts.expiryMs)
      if (ms !== undefined) expiry.dueAt(expiresAt(now, ms))
    })
    // Sessions that expired while the broker was down are gone before the listeners open: a client must not resume one
    await expiry.now()
    // sweep: sessions disconnected elsewhere (a dead cluster node's) are due now, perhaps sooner than the timer
    return { close: expiry.close, sweep: () => { void expiry.now() } }
  }
  return { noteConnecting, startNewSession, start }
}

/** Longest wait between two expiry runs: a session added while one is scheduled is found by the next run anyway. */
const MAX_WAIT_MS = 60_000
/** Wait before looking again at a session due but not removable (its client is connecting). */
const RETRY_MS = 250

/** Removes each session when it is due: one timer, set for the next session to expire. */
function expireSessions (broker: BrokerInternals, store: CulexStore, opts: { expiryMs: number, isConnecting: (id: string) => boolean }, log: Logger) {
  let timer: NodeJS.Timeout | undefined
  let timerAt = Infinity
  let running = false
  let again = false
  let closed = false

  const schedule = (at: number): void => {
    if (closed || at >= timerAt) return
    clearTimeout(timer)
    timerAt = at
    timer = setTimeout(() => { void run() }, Math.max(0, at - Date.now())).unref()
  }
  const run = async (): Promise<void> => {
    timer = undefined
    timerAt = Infinity
    if (running) {
      again = true
      return
    }
    running = true
    try {
      const next = await sweep()
      running = false
      schedule(again ? Date.now() : next)
    } catch (err) {
      running = false
      log.error({ err }, 'session expiry failed')
      schedule(Date.now() + MAX_WAIT_MS)
    }
    again = false
  }
  const sweep = async (): Promise<number> => {
    const now = Date.now()
    const { expired, nextAt } = await store.expiringSessions(opts.expiryMs, now)
    let next = Math.min(nextAt ?? Infinity, now + MAX_WAIT_MS)
    for (const clientId of expired) {
      // Checked right before the purge, which empties the session in memory at once (its writes follow).
      if (broker.clients[clientId] !== undefined || opts.isConnecting(clientId)) {
        next = Math.min(next, now + RETRY_MS)
        continue
      }
      // the store removes it only if still over: a client resuming it on another node claimed it first
      if (await store.expireSession(clientId, opts.expiryMs, now)) log.info({ clientId }, 'session expired')
    }
    return next
  }
  return {
    /** A session is due at `at`, maybe sooner than the timer. */
    dueAt: schedule,
    /** Removes the sessions due now; resolves once they are gone. */
    now: run,
    close: () => {
      closed = true
      clearTimeout(timer)
    }
  }
}

/** The store methods the QoS 0 queue uses (CulexStore). */
export interface Qos0Store {
  enqueueOfflineQos0: (packet: { topic: string, qos: number, brokerId?: string | null, brokerCounter?: number }, isOnline: (clientId: string) => boolean) => Promise<void> | undefined
}

/**
 * sessions.queueQos0 (Mosquitto's queue_qos0_messages): a message that goes out at QoS 0 (a QoS 0 publish, or a
 * QoS 1/2 one through a filter granted QoS 0) is queued for every persistent session that is offline. aedes never
 * queues these: it calls the store for QoS>0 publishes only, and its QoS 0 delivery never tells the store a copy was
 * sent, so a copy queued for a connected client would stay. Hence "offline" has to be decided here, once per message,
 * where aedes hands it to the live subscribers (broker.mq.emit), so that a session gets it one way, live or queued:
 *
 * - online is a connection of that session that is registered, or that has begun restoring its subscriptions (aedes
 *   delivers to those before it registers the client, and replays the queue after: the router holds such a live
 *   copy until the replay has ended, protocol/live-behind-replay.ts); a closing one is offline;
 * - the copies of a QoS 1/2 publish are committed before emit reports back, so before the publisher's PUBACK/PUBREC;
 *   those of a QoS 0 publish join the next batch, with no one to wait for them;
 * - `$SYS` messages are never queued: they are the broker's state of the moment, soon replaced (the `$SYS/broker/`
 *   tree alone is dozens of messages per interval, which would fill an idle session's queue).
 *
 * The store caps each copy at QoS 0 and applies the queue limits; aedes' replay sends it once and deletes it.
 */
export function queueOfflineQos0 (broker: BrokerInternals, store: Qos0Store, opts: { enabled: boolean }, log: Logger): { noteConnection: SubscribeStep } {
  if (!opts.enabled) return { noteConnection: () => true }
  // Connections of persistent sessions, from their first subscribe step (a restore included) until they close.
  const connections = new Map<string, Set<Client>>()
  const forget = (client: Client): void => {
    const of = connections.get(client.id)
    of?.delete(client)
    if (of?.size === 0) connections.delete(client.id)
  }
  const isOnline = (clientId: string): boolean => {
    const registered = broker.clients[clientId]
    if (registered !== undefined && !registered.closed) return true
    for (const client of connections.get(clientId) ?? []) {
      if (client.closed) forget(client)
      else if (Object.keys(internals(client).subscriptions).length > 0) return true
    }
    return false
  }
  broker.on('clientDisconnect', forget)
  broker.on('clientError', forget)

  const mq = broker.mq
  const emit = mq.emit.bind(mq)
  mq.emit = (packet, done) => {
    const queued = packet.topic.startsWith(SYS_PREFIX) ? undefined : store.enqueueOfflineQos0(packet, isOnline)
    if (queued === undefined) {
      emit(packet, done)
      return
    }
    if (packet.qos === 0) {
      // The store logs a failed batch once (store write failed); a line per message would flood the log.
      queued.catch((err: unknown) => log.debug({ err, topic: packet.topic }, 'QoS 0 message not queued'))
      emit(packet, done)
      return
    }
    // Handled at once: the deliveries finish on a later turn, and a rejection must not go unhandled until then.
    const failure = queued.then(() => undefined, (err: Error) => err)
    emit(packet, err => {
      void failure.then(failed => done?.(failed ?? err))
    })
  }

  return {
    noteConnection: (client) => {
      if (client.clean) return true
      let of = connections.get(client.id)
      if (of === undefined) connections.set(client.id, of = new Set())
      of.add(client)
      return true
    }
  }
}
