import { Readable } from 'node:stream'
import type { Client } from 'aedes'
import type { SessionQueues } from '../store/types.js'
import { internals, type BrokerInternals, type ClientInternals } from './aedes-internals.js'
import { encodeFrames, type OutgoingPacket } from './frames.js'

/** The store methods the replay uses: the queue in chunks, and aedes' per-message bookkeeping. */
export interface ReplayStore {
  /** The queue in chunks, and the counts of its messages never sent and sent but unacknowledged. */
  sessionQueues: Pick<SessionQueues, 'batches' | 'waiting' | 'inflight'>
  outgoingUpdate: (client: Client, packet: ReplayPacket) => Promise<void>
  outgoingClearMessageId: (client: Client, packet: ReplayPacket) => Promise<unknown>
}

export interface ReplayPacket {
  cmd: 'publish' | 'pubrel'
  messageId: number
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
 * Unacknowledged messages a replay lets a session have before it waits for acknowledgements. aedes sets no limit,
 * but packet ids are 16 bits: a queue longer than 65 535 sent in one burst would reuse ids still in flight, and a
 * QoS 2 receiver drops a new message that reuses one.
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

/**
 * aedes replays a session's queue one message per turn of the event loop (each write ends in a setImmediate
 * before the next message is read), so a reconnecting client with 20 000 queued messages waited 20 000 turns and
 * got each in its own socket write. This replay keeps aedes' per-message steps and their order — outgoingUpdate
 * (the packet id is recorded, for QoS 2 on disk, before the packet leaves), authorizeForward, the write — but
 * does them for a whole chunk read from the store at once, so a chunk goes out in one socket write, and it only
 * waits when the socket pushes back or REPLAY_WINDOW messages are unacknowledged. It is installed as the store's
 * outgoingStream: aedes' emptyQueue pipes what that returns, so the stream handed back ends when the replay is
 * over and CONNACK-to-ready keeps its order.
 */
export function createQueueReplay (broker: BrokerInternals, store: ReplayStore): (client: Client) => Readable {
  // One listener for every replay waiting for acknowledgements (aedes emits 'ack' for each PUBACK and PUBCOMP).
  const waiting = new Map<Client, () => void>()
  broker.on('ack', (_packet: unknown, client: Client) => waiting.get(client)?.())

  const acknowledged = async (client: ClientInternals, room: number): Promise<void> => {
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (!client.closed && store.sessionQueues.inflight(client) + room > REPLAY_WINDOW) return
        waiting.delete(client)
        client.conn.removeListener('close', check)
        resolve()
      }
      waiting.set(client, check)
      client.conn.once('close', check)
      check()
    })
  }

  /** Sends one snapshot of the queue; returns how many packets it handed out. */
  const pass = async (client: ClientInternals, unsentOnly: boolean): Promise<number> => {
    let handed = 0
    for await (const chunk of store.sessionQueues.batches(client, unsentOnly)) {
      handed += chunk.length
      if (store.sessionQueues.inflight(client) + chunk.length > REPLAY_WINDOW) await acknowledged(client, chunk.length)
      if (client.closed) return handed
      const packets = chunk.map(fields => toPacket(fields, client))
      const updated = await Promise.all(packets.map(packet => store.outgoingUpdate(client, packet).then(() => true, (err: unknown) => {
        // as aedes' emptyQueue: a packet the store cannot account for ends the connection
        client.emit('error', err)
        return false
      })))
      if (client.closed) return handed
      // the chunk's packets as one buffer: one write through the connection's stream wrappers, one segment
      const frames: OutgoingPacket[] = []
      for (let i = 0; i < packets.length; i++) {
        if (!updated[i]) continue
        const packet = packets[i]
        const forward = packet.cmd === 'publish' ? broker.authorizeForward(client, packet as never) as ReplayPacket | null | undefined : packet
        if (forward == null || client.clean) {
          store.outgoingClearMessageId(client, packet).catch(() => undefined)
          continue
        }
        frames.push(forward)
      }
      const writable = frames.length === 0 || client.conn.write(encodeFrames(frames))
      if (!writable && !client.closed) await drained(client)
    }
    return handed
  }

  // Passes until nothing is left unsent. The last check and the end of `replaying` happen in one synchronous step,
  // so no message can be left to a replay that has ended. A clean session has no queue to replay.
  const run = async (client: ClientInternals): Promise<void> => {
    if (client.clean) return
    try {
      for (let unsentOnly = false; ; unsentOnly = true) {
        const handed = await pass(client, unsentOnly)
        // what is left and could not be sent (an unreadable record) is tried again at the next connection
        if (client.closed || store.sessionQueues.waiting(client) === 0 || (unsentOnly && handed === 0)) return
      }
    } finally {
      replaying.delete(client)
    }
  }

  return (client) => {
    const done = new Readable({ objectMode: true, read () {} })
    run(internals(client)).then(() => done.push(null), (err: unknown) => done.destroy(err as Error))
    return done
  }
}

/** The packet aedes' QoSPacket would build: a stored packet id is kept (a resend), a new one is taken in turn. */
function toPacket (fields: Record<string, unknown>, client: ClientInternals): ReplayPacket {
  // the store hands out a fresh object per call (outputPacket), so it is completed in place
  const packet = fields as unknown as ReplayPacket
  if (packet.cmd !== 'pubrel') {
    packet.cmd = 'publish'
    packet.payload ??= Buffer.alloc(0)
    packet.qos ??= 0
    packet.retain ??= false
    packet.dup ??= false
  }
  // a queued QoS 0 copy gets one too, as aedes gives it: outgoingUpdate expects one (it never reaches the wire)
  if (typeof packet.messageId !== 'number' || packet.messageId === 0) {
    packet.messageId = client._nextId
    client._nextId = client._nextId >= 65535 ? 1 : client._nextId + 1
  }
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
