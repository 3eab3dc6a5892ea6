import type { QueuedCopies } from '../contract.js'
import { payloadBytes, payloadOf } from '../packets.js'
import type { PacketLike } from '../types.js'
import { addEntry, counterKey, entryFields } from './queue-entries.js'
import type { QueueMirrors } from './queue-mirrors.js'
import { defineScript, ENTRY_OF, type Script } from './scripts.js'
import type { RedisDeps } from './write-order.js'

/** (session, message) pairs whose entries one script call reads. */
const ENTRIES_PER_CALL = 1000

/**
 * Cluster mode: other nodes queued these messages and sent them here live. The mirrors of the sessions connected
 * here learn their entries, so that each live copy is delivered as its entry (its packet id recorded, its
 * acknowledgement deleting it) rather than left to a replay nothing starts.
 */
export class EntryLearner {
  readonly #deps: RedisDeps
  readonly #mirrors: QueueMirrors
  readonly #isHere: (clientId: string) => boolean
  readonly #entryOf: Script

  constructor (deps: RedisDeps, mirrors: QueueMirrors, isHere: (clientId: string) => boolean) {
    this.#deps = deps
    this.#mirrors = mirrors
    this.#isHere = isHere
    this.#entryOf = defineScript(deps.redis, 'culexEntryOf', ENTRY_OF)
  }

  /**
   * The entries the origin made, sent with the message: learned without asking Redis. One deleted since this node
   * last read the session's queue (replayed from that read and acknowledged meanwhile) is not learned again.
   */
  carried (packet: PacketLike, queued: QueuedCopies): void {
    const bytes = payloadBytes(payloadOf(packet))
    for (const [clientId, seq, qos] of queued.copies) {
      if (!this.#isHere(clientId)) {
        this.#mirrors.forget(clientId)
        continue
      }
      if (this.#mirrors.deletedBefore(clientId, seq)) continue
      this.#mirrors.change(clientId, true, addEntry({ seq, enc: '', key: String(seq), cmd: 'publish', brokerId: packet.brokerId ?? undefined, brokerCounter: packet.brokerCounter, qos, bytes, enqueuedAt: queued.at }))
    }
  }

  /**
   * The entries of these sessions, read from Redis (found by the message's broker id and counter): one script call
   * per ENTRIES_PER_CALL (session, message) pairs, so a batch read from the bus costs one round trip.
   */
  async lookUp (messages: Array<{ packet: PacketLike, clientIds: string[] }>): Promise<void> {
    const pairs: Array<[clientId: string, bk: string]> = []
    for (const { packet, clientIds } of messages) {
      const bk = counterKey(packet.brokerId, packet.brokerCounter)
      if (bk === '') continue
      for (const id of new Set(clientIds)) if (this.#isHere(id)) pairs.push([id, bk])
    }
    const calls: Array<Promise<unknown>> = []
    for (let at = 0; at < pairs.length; at += ENTRIES_PER_CALL) {
      const chunk = pairs.slice(at, at + ENTRIES_PER_CALL)
      calls.push(this.#entryOf(chunk.flatMap(([id]) => [this.#deps.keys.queue(id), this.#deps.keys.queueIndex(id)]), chunk.map(([, bk]) => bk)))
    }
    const replies = await Promise.all(calls) as Array<Array<number | Buffer>>
    replies.forEach((reply, call) => {
      for (let i = 0; i < reply.length; i += 2) {
        if (reply[i] === 0) continue
        const clientId = pairs[call * ENTRIES_PER_CALL + i / 2][0]
        this.#mirrors.change(clientId, true, addEntry(entryFields(reply[i] as number, (reply[i + 1] as Buffer).toString())))
      }
    })
  }
}
