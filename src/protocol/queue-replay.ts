import { Readable } from 'node:stream'
import type { Client } from 'aedes'
import type { SessionQueues } from '../store/types.js'
import { DONE } from '../store/contract.js'
import { internals, type BrokerInternals, type ClientInternals } from './aedes-internals.js'
import { encodeFrames, publishSize, type OutgoingPacket } from './frames.js'
import { sentObserver } from './sent-observer.js'
import { packetIds, type PacketIds } from './packet-ids.js'
import { planDelivery } from './delivery-plan.js'
import { tooLargeDetail, type UndeliveredSink } from './undelivered.js'
import { v5Of } from './v5/connection.js'
import { withForwardedProperties } from './v5/outgoing.js'
import { subscriptionIdsFor, withSubscriptionIds } from './v5/subscription-ids.js'
import { receiveWindowOf, type InflightCopy } from './v5/receive-window.js'
import type { ReplayEnd } from './live-behind-replay.js'

/** The store methods the replay uses: the queue in chunks, and aedes' per-message bookkeeping. */
export interface ReplayStore {
  /** The queue in chunks, and the counts of its messages never sent and sent but unacknowledged. */
  sessionQueues: Pick<SessionQueues, 'batches' | 'waiting' | 'inflight' | 'owes'>
  outgoingUpdate: (client: Client, packet: ReplayPacket) => Promise<void>
  outgoingClearMessageId: (client: Client, packet: ReplayPacket) => Promise<unknown>
}

export interface ReplayPacket {
  cmd: 'publish' | 'pubrel'
  messageId: number | undefined
  topic?: string
  payload?: Buffer
  qos?: 0 | 1 | 2
  retain?: boolean
  dup?: boolean
  brokerId?: string
  brokerCounter?: number
  [field: string]: unknown
}

/**
 * New messages a replay sends while this many of the session's messages are unacknowledged: flow control, so a
 * reconnecting client with a long queue is not sent it all before it acknowledges anything. Only new packet ids
 * count against it: what the session already has in flight is resent at once, however much that is, since only
 * its acknowledgements make room. Packet ids themselves never repeat while held (packet-ids.ts).
 */
export const REPLAY_WINDOW = 4096

/** Persistent sessions whose queue is being replayed: their live deliveries wait in the queue (see isReplaying). */
const replaying = new WeakSet<Client>()

/**
 * Whether a live QoS 1/2 delivery to this client is left to the replay. aedes writes live messages as soon as it
 * restores a session's subscriptions, before CONNACK even, and while the queue is replayed: they overtook the
 * messages queued before them, and one that was also in the replay's snapshot went out twice. Such a message is
 * already in the session's queue (aedes queues a QoS 1/2 message for every persistent subscriber before delivering
 * it), so the replay sends it, in order, in its next pass.
 */
export function isReplaying (client: Client): boolean {
  return replaying.has(client)
}

/** From the CONNECT of a persistent session: aedes restores its subscriptions before CONNACK and the replay. */
export function holdLiveDeliveries (client: Client): void {
  replaying.add(client)
}

/** What waits for the end of the replay at CONNECT (live-behind-replay.ts). */
const endings = new WeakMap<Client, ReplayEnd>()

export function atReplayEnd (client: Client, end: ReplayEnd): void {
  endings.set(client, end)
}

/**
 * aedes replays a session's queue one message per turn of the event loop (each write ends in a setImmediate
 * before the next message is read), so a reconnecting client with 20 000 queued messages waited 20 000 turns and
 * got each in its own socket write. This replay keeps aedes' per-message steps and their order — outgoingUpdate
 * (the packet id is recorded, for QoS 2 on disk, before the packet leaves), authorizeForward, the write — but
 * does them for runs of a chunk read from the store at once, each run in one socket write. A message in flight is
 * resent with its packet id at once; a new one waits when REPLAY_WINDOW messages are unacknowledged or no packet id
 * is free, and any run waits when the socket pushes back. For an MQTT 5 client every PUBLISH, resent or new, also
 * waits while its Receive Maximum is unacknowledged. It is installed as the store's outgoingStream: aedes'
 * emptyQueue pipes what that returns, so the stream handed back ends when the replay is over and CONNACK-to-ready
 * keeps its order. `resume` replays what is unsent again on a connection whose replay has ended: the delivery router
 * leaves an MQTT 5 client's copies in its queue while its Receive Maximum is reached (delivery.ts).
 */
export function createQueueReplay (broker: BrokerInternals, store: ReplayStore, undelivered: UndeliveredSink): QueueReplay {
  // One listener for every replay waiting for acknowledgements (aedes emits 'ack' for each PUBACK and PUBCOMP).
  const waiting = new Map<Client, () => void>()
  broker.on('ack', (_packet: unknown, client: Client) => waiting.get(client)?.())

  /** Until the client acknowledges something (room in the window, an id freed), or the connection ends. */
  const acknowledgement = async (client: ClientInternals): Promise<void> => {
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        waiting.delete(client)
        client.conn.removeListener('close', stop)
        resolve()
      }
      waiting.set(client, stop)
      client.conn.once('close', stop)
      if (client.closed) stop()
    })
  }

  /** Sends one snapshot of the queue; returns how many packets it handed out. */
  const pass = async (client: ClientInternals, unsentOnly: boolean): Promise<number> => {
    const ids = packetIds(client)
    // an MQTT 5 client's Receive Maximum: PUBLISHes it has not completed, resends included
    const window = receiveWindowOf(client)
    let handed = 0
    for await (const chunk of store.sessionQueues.batches(client, unsentOnly)) {
      handed += chunk.length
      for (let i = 0; i < chunk.length;) {
        if (client.closed) return handed
        // the longest run that may go now: resends always, new messages while the window and the ids allow
        const run: ReplayPacket[] = []
        let fresh = 0
        for (; i < chunk.length; i++) {
          const packet = toPacket(chunk[i])
          const counted = window !== undefined && packet.cmd === 'publish' && packet.qos !== 0
          if (counted && window.full) break
          if (packet.messageId === undefined) {
            if (store.sessionQueues.inflight(client) + fresh >= REPLAY_WINDOW) break
            const id = ids.take()
            if (id === undefined) break
            packet.messageId = id
            fresh++
          }
          // its place in the window is taken now, before the store's update: nothing else may fill it meanwhile
          if (counted) window.sent(packet.messageId, packet as ReplayPacket & InflightCopy)
          run.push(packet)
        }
        // nothing may go now, as just checked in this same synchronous step: the next acknowledgement makes room
        if (run.length > 0) await send(client, run)
        else await acknowledgement(client)
      }
    }
    return handed
  }

  /**
   * One run: each packet's id recorded, then the packets the client may receive as one buffer, one write. The
   * client's acknowledgements are read meanwhile (since its chunk was read, and while a QoS 2 id is written), so
   * what the session no longer owes is left out, before and after the update: a PUBLISH resent after its PUBREC
   * has turned it into a PUBREL is a second delivery to a receiver that has completed it [MQTT-4.3.3-1], and one
   * whose PUBACK or PUBCOMP has come has nothing left to update.
   */
  const send = async (client: ClientInternals, all: ReplayPacket[]): Promise<void> => {
    const ids = packetIds(client)
    const packets = all.filter(packet => owed(client, packet, ids))
    // the updates the store completed at once (a QoS 1 packet id) are not waited for one by one
    let failed: Set<ReplayPacket> | undefined
    let writing: Array<Promise<void>> | undefined
    for (const packet of packets) {
      const update = store.outgoingUpdate(client, packet as StoredPacket)
      if (update === DONE) continue
      (writing ??= []).push(update.catch((err: unknown) => {
        // as aedes' emptyQueue: a packet the store cannot account for ends the connection
        (failed ??= new Set()).add(packet)
        client.emit('error', err)
      }))
    }
    if (writing !== undefined) await Promise.all(writing)
    if (client.closed) return
    const v5 = v5Of(client)
    const maxPacketBytes = v5?.connect.maximumPacketSize
    const frames: OutgoingPacket[] = []
    // the queue keeps no arrival time its replay could use: a queued message's lag counts from its replay
    const observer = sentObserver(client)
    const now = Date.now()
    for (let i = 0; i < packets.length; i++) {
      const packet = packets[i] as StoredPacket
      if (failed?.has(packet) === true) {
        unsent(client, packet, ids)
        continue
      }
      // a queued QoS 0 copy's entry goes at its update: it is sent once. Checked again only if this run waited for
      // an update: acknowledgements are read between turns of the event loop, never within one
      if (packet.qos !== 0 && writing !== undefined && !owed(client, packet, ids)) continue
      const authorized = packet.cmd === 'publish' ? broker.authorizeForward(client, packet as never) as StoredPacket | null | undefined : packet
      let forward = v5 !== undefined && authorized != null ? withForwardedProperties(authorized) : authorized
      // the Subscription Identifiers of the session's subscriptions the message matches now
      const subscriptionIds = v5 !== undefined && forward != null && forward.cmd === 'publish'
        ? subscriptionIdsFor(v5, client.subscriptions, String(forward.topic), packet.clientId !== undefined && packet.clientId === client.id)
        : undefined
      if (subscriptionIds !== undefined) forward = { ...forward as StoredPacket, properties: withSubscriptionIds((forward as OutgoingPacket).properties, subscriptionIds) }
      // like a copy the client may not receive: one larger than it accepts (MQTT 5 [MQTT-3.1.2-25]), and its own
      // message where every subscription it matches is No Local
      const size = maxPacketBytes !== undefined && forward != null && forward.cmd === 'publish' ? publishSize(forward as OutgoingPacket, forward.qos ?? 0, (forward as OutgoingPacket).properties) : 0
      const tooLarge = size > (maxPacketBytes ?? Infinity)
      if (forward == null || client.clean || tooLarge || isOwnNoLocal(client, packet)) {
        store.outgoingClearMessageId(client, packet).catch(() => undefined)
        unsent(client, packet, ids)
        if (tooLarge && forward != null) undelivered(client, [{ topic: forward.topic ?? '', payload: forward.payload, qos: forward.qos ?? 0, retain: forward.retain }], 'too-large-for-client', tooLargeDetail(size, maxPacketBytes ?? 0))
        continue
      }
      // a Topic Alias is set in the order the frames are written, all in this synchronous step
      frames.push(v5?.aliasesOut === undefined || forward.cmd !== 'publish' ? forward : v5.aliasesOut.apply(forward))
      // a queued QoS 0 copy was given an id only for outgoingUpdate; it is never acknowledged
      if (packet.qos === 0) ids.release(packet.messageId)
      else if (packet.cmd === 'publish') observer?.sent(packet.messageId, packet.qos ?? 1, now, '')
    }
    const writable = frames.length === 0 || client.conn.write(encodeFrames(frames, v5 !== undefined))
    if (!writable && !client.closed) await drained(client)
  }

  /** Whether the session still owes the packet; the id of one it does not is free again. */
  const owed = (client: ClientInternals, packet: ReplayPacket, ids: PacketIds): boolean => {
    if (store.sessionQueues.owes(client, packet)) return true
    unsent(client, packet, ids)
    return false
  }

  // Passes until nothing is left unsent. The last check and the end of `replaying` happen in one synchronous step,
  // so no message can be left to a replay that has ended. A clean session has no queue to replay.
  const run = async (client: ClientInternals, resumed: boolean): Promise<void> => {
    if (client.clean) return
    try {
      for (let unsentOnly = resumed; ; unsentOnly = true) {
        const handed = await pass(client, unsentOnly)
        if (client.closed) return
        const arriving = resumed ? undefined : endings.get(client)?.arriving()
        if (arriving !== undefined) {
          await arriving
          continue
        }
        // what is left and could not be sent (an unreadable record) is tried again at the next connection
        if (store.sessionQueues.waiting(client) === 0 || (unsentOnly && handed === 0)) return
      }
    } finally {
      replaying.delete(client)
      if (!resumed) endings.get(client)?.ended()
    }
  }

  return {
    outgoingStream: (client) => {
      const done = new Readable({ objectMode: true, read () {} })
      run(internals(client), false).then(() => done.push(null), (err: unknown) => done.destroy(err as Error))
      return done
    },
    resume: (client) => {
      if (replaying.has(client) || client.closed) return
      replaying.add(client)
      const c = internals(client)
      run(c, true).catch((err: unknown) => c.emit('error', err))
    }
  }
}

export interface QueueReplay {
  /** The store's outgoingStream: the replay at CONNECT. */
  outgoingStream: (client: Client) => Readable
  /** Sends what the queue holds unsent, unless a replay is running; live copies wait in the queue meanwhile. */
  resume: (client: Client) => void
}

type StoredPacket = ReplayPacket & { messageId: number }

/** A packet of a run that is not sent after all: its id is free again, and its place in the window. */
function unsent (client: ClientInternals, packet: ReplayPacket, ids: PacketIds): void {
  if (packet.messageId === undefined) return
  ids.release(packet.messageId)
  receiveWindowOf(client)?.settle(packet.messageId)
}

/**
 * The packet aedes' QoSPacket would build, without an id yet when it never went out (the caller takes one); a
 * message in flight keeps the id it was sent with (a resend), a PUBREL its own.
 */
function toPacket (fields: Record<string, unknown>): ReplayPacket {
  // the store hands out a fresh object per call (outputPacket), so it is completed in place
  const packet = fields as unknown as ReplayPacket
  if (packet.cmd !== 'pubrel') {
    packet.cmd = 'publish'
    packet.payload ??= Buffer.alloc(0)
    packet.qos ??= 0
    packet.retain ??= false
    packet.dup ??= false
  }
  // a queued QoS 0 copy is given one too, as aedes gives it: outgoingUpdate expects one (it never reaches the wire)
  if (typeof packet.messageId !== 'number' || packet.messageId === 0) packet.messageId = undefined
  return packet
}

/** Until the socket takes what it buffered, or the connection ends (aedes' drain timeout included). */
async function drained (client: ClientInternals): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      client.conn.removeListener('close', stop)
      resolve()
    }
    client.conn.once('close', stop)
    client.waitForDrain(stop)
  })
}

function isOwnNoLocal (client: ClientInternals, packet: StoredPacket): boolean {
  if (packet.cmd !== 'publish' || packet.clientId !== client.id || packet.topic === undefined) return false
  const plan = planDelivery(client.subscriptions, packet.topic, true)
  return plan.matches > 0 && plan.deliverable === 0
}
