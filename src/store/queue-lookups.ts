import { Readable } from 'node:stream'
import type { ClientQueue, OwedPacket } from './outgoing-index.js'

/**
 * The questions the broker asks of session queues synchronously on every delivery, answered from in-memory
 * queues: the LevelDB store's index (Outbox) and the Redis store's mirrors (RedisOutbox) share them.
 */
export abstract class QueueLookups {
  protected readonly queues = new Map<string, ClientQueue>()
  /** Connection tokens: an entry sent on another client object (an earlier connection) is replayed with DUP. */
  readonly #tokens = new WeakMap<object, number>()
  #nextToken = 1

  /** A snapshot of the queue in chunks; `unsentOnly`: its messages never sent yet. */
  abstract batches (client: { id: string }, unsentOnly?: boolean): AsyncGenerator<Array<Record<string, unknown>>>

  /** The same replay one packet at a time (aedes-persistence's outgoingStream). */
  stream (client: { id: string }): Readable {
    const batches = this.batches(client)
    return Readable.from((async function * () {
      for await (const batch of batches) yield * batch
    })(), { objectMode: true })
  }

  protected token (client: object): number {
    let token = this.#tokens.get(client)
    if (token === undefined) {
      token = this.#nextToken++
      this.#tokens.set(client, token)
    }
    return token
  }

  holdsPacketId (client: { id: string }, messageId: number): boolean {
    return this.queues.get(client.id)?.byMessageId(messageId) !== undefined
  }

  owes (client: { id: string }, packet: OwedPacket): boolean {
    return this.queues.get(client.id)?.owes(packet) ?? false
  }

  unsent (client: { id: string }, packet: { brokerId?: string | null, brokerCounter?: number }): boolean {
    if (packet.brokerId == null || packet.brokerCounter === undefined) return false
    const entry = this.queues.get(client.id)?.byCounter(packet.brokerId, packet.brokerCounter)
    return entry !== undefined && entry.messageId === undefined
  }

  waiting (client: { id: string }): number {
    return this.queues.get(client.id)?.waiting ?? 0
  }

  inflight (client: { id: string }): number {
    return this.queues.get(client.id)?.inflightCount ?? 0
  }

  clientIds (): IterableIterator<string> {
    return this.queues.keys()
  }

  /** The highest broker counter of this broker's messages in any queue (0: none). */
  maxCounter (brokerId: string): number {
    let max = 0
    for (const queue of this.queues.values()) max = Math.max(max, queue.maxCounter(brokerId))
    return max
  }
}
