import type { Client } from 'aedes'
import type { DeliveryPacket } from './aedes-internals.js'
import { payloadBytes } from '../store/packets.js'
import { HeldCopies } from './held-copies.js'
import { atReplayEnd } from './queue-replay.js'

/** A persistent session's live QoS 0 copies while its queue is replayed at CONNECT (see liveQos0BehindReplay). */
export interface LiveBehindReplay {
  /** From the CONNECT until the replay at CONNECT has ended. */
  readonly holding: boolean
  /** Keeps the copy; `send` sends it as it would have gone now. */
  hold: (packet: DeliveryPacket, send: () => void) => void
}

/** What the replay at CONNECT of a persistent session waits for, and tells, at its end (queue-replay.ts). */
export interface ReplayEnd {
  /** Entries still on their way into the queue: the replay sends them in one more pass before it ends. */
  arriving: () => Promise<unknown> | undefined
  /** Called in the synchronous step that ends the replay. */
  ended: () => void
}

/**
 * A persistent session's live QoS 0 copies wait, from its CONNECT, until the replay of its queue has ended, and go
 * out in the step that ends it, as its QoS 1/2 copies wait in its queue. aedes delivers to a session from the restore
 * of its subscriptions, before CONNACK, so QoS 0 copies went out before CONNACK [MQTT-3.2.0-1]. With
 * sessions.queueQos0 they also went out ahead of the messages queued while the client was away (a session counts as
 * online once its subscriptions are restored, src/sessions/hooks.ts, so its messages from then on are not queued).
 * Those leave the queue before they are written (the store deletes a QoS 0 entry, durably, before it is sent), so a
 * client that left once a newer message had come lost them: the replay found the connection closed and sent nothing.
 *
 * Held in memory within limits.maxInflightMessages and maxInflightBytes. Past either, with sessions.queueQos0
 * (`enqueue`) the held copies and every one after them join the session's queue instead, in order, and the replay
 * sends them in its next passes; without it they go out, and the ones after them, at once.
 */
export function liveQos0BehindReplay (client: Client, enqueue: ((packet: DeliveryPacket) => Promise<unknown>) | undefined, bounds: { maxMessages: number, maxBytes: number }): LiveBehindReplay {
  let holding = true
  let held: HeldCopies<[DeliveryPacket, () => void]> | undefined
  // past the bounds: where the copies go, and the enqueues under way (a store may add an entry only once its write
  // returns: Redis)
  let queueing: ((packet: DeliveryPacket) => Promise<unknown>) | undefined
  const queued = new Set<Promise<void>>()
  const toQueue = (packet: DeliveryPacket, add: (packet: DeliveryPacket) => Promise<unknown>): void => {
    // a failed write is logged by the store; the copy is lost, as a QoS 0 copy may be
    const settled = add(packet).then(() => undefined, () => undefined)
    queued.add(settled)
    void settled.then(() => queued.delete(settled))
  }
  const release = (): void => {
    holding = false
    queueing = undefined
    const copies = held?.take() ?? []
    held = undefined
    for (const [, send] of copies) send()
  }
  atReplayEnd(client, {
    arriving: () => queued.size === 0 ? undefined : Promise.all(queued),
    ended: release
  })
  return {
    get holding () { return holding },
    hold: (packet, send) => {
      if (queueing === undefined) {
        held ??= new HeldCopies(bounds.maxMessages, bounds.maxBytes)
        if (held.add([packet, send], packet.topic.length + payloadBytes(packet.payload))) return
        if (enqueue === undefined) {
          release()
          send()
          return
        }
        queueing = enqueue
        for (const [copy] of held.take()) toQueue(copy, enqueue)
      }
      toQueue(packet, queueing)
    }
  }
}
