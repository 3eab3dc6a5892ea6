import type { Client } from 'aedes'
import { internals } from './aedes-internals.js'

/** Whether the session's store still holds an id: a persistent session's unacknowledged PUBLISH or PUBREL. */
export type HeldBySession = (messageId: number) => boolean

const MAX_ID = 65535

/**
 * A set of ids as bits, in 64 blocks of 1024 made on first use: a connection with few messages in flight, numbered in
 * turn, needs one or two blocks (128 bytes each), and adding and removing costs a few nanoseconds where a Set of
 * changing numbers cost over 100. The table of blocks too waits for the first id: most connections of a large
 * deployment never receive a QoS 1/2 message, and it is 0.5 KB.
 */
class IdBits {
  #blocks: Array<Uint32Array | undefined> | undefined
  size = 0

  has (id: number): boolean {
    const block = this.#blocks?.[id >>> 10]
    return block !== undefined && (block[(id >>> 5) & 31] & (1 << (id & 31))) !== 0
  }

  add (id: number): void {
    const blocks = this.#blocks ??= new Array<Uint32Array | undefined>(64).fill(undefined)
    let block = blocks[id >>> 10]
    if (block === undefined) blocks[id >>> 10] = block = new Uint32Array(32)
    const word = (id >>> 5) & 31
    const bit = 1 << (id & 31)
    if ((block[word] & bit) !== 0) return
    block[word] |= bit
    this.size++
  }

  /** Whether it was there. */
  delete (id: number): boolean {
    const block = this.#blocks?.[id >>> 10]
    const word = (id >>> 5) & 31
    const bit = 1 << (id & 31)
    if (block === undefined || (block[word] & bit) === 0) return false
    block[word] &= ~bit
    this.size--
    return true
  }
}

/**
 * The packet identifiers of one connection's outgoing QoS 1/2 flows. An id is handed out only while no flow of the
 * session holds it [MQTT-2.3.1-2]: not one this connection sent and the client has not completed (PUBACK, or
 * PUBCOMP after PUBREL), and for a persistent session not one its store holds from an earlier connection (a PUBLISH
 * or PUBREL that is resent with that id). aedes numbered every packet from a counter starting at a random value on
 * each connection, so after a reconnect a new message could take the id of one still in flight, and a QoS 2
 * receiver then took the new message for the old one and dropped it.
 *
 * The cursor is aedes' own counter (client._nextId), so ids still go round in turn; a held id is skipped. When all
 * 65 535 are held, nothing is reused: a delivery waits (`wait`) until the client completes a flow, in the order
 * the deliveries asked, or until the connection closes.
 */
export class PacketIds {
  readonly #counter: { _nextId: number }
  readonly #heldBySession: HeldBySession | undefined
  /** Ids this connection handed out and the client has not completed. */
  readonly #inUse = new IdBits()
  readonly #waiting: Array<(messageId: number | undefined) => void> = []
  #closed = false

  constructor (counter: { _nextId: number }, heldBySession?: HeldBySession) {
    this.#counter = counter
    this.#heldBySession = heldBySession
  }

  /** A free id, now in use; undefined when none is free or earlier deliveries wait for one (they go first). */
  take (): number | undefined {
    if (this.#waiting.length > 0 || this.#closed) return undefined
    return this.#find(true)
  }

  /** Whether `take` would give an id now. */
  available (): boolean {
    return this.#waiting.length === 0 && !this.#closed && this.#find(false) !== undefined
  }

  /** Calls back with an id once one is free (undefined if the connection closes first), after earlier waiters. */
  wait (then: (messageId: number | undefined) => void): void {
    if (this.#closed) {
      then(undefined)
      return
    }
    this.#waiting.push(then)
    this.retry()
  }

  /** The client completed the flow (PUBACK, PUBCOMP), or the packet was never sent: the id may be used again. */
  release (messageId: number): void {
    if (this.#inUse.delete(messageId) && this.#waiting.length > 0) this.retry()
  }

  /** Serves waiting deliveries with the ids free now (the store lets an id go after the client's acknowledgement). */
  retry (): void {
    while (this.#waiting.length > 0 && !this.#closed) {
      const id = this.#find(true)
      if (id === undefined) return
      const then = this.#waiting.shift() as (messageId: number | undefined) => void
      then(id)
    }
  }

  /** The connection closed: what waits gets no id (a persistent session's queue keeps those messages). */
  close (): void {
    this.#closed = true
    for (const then of this.#waiting.splice(0)) then(undefined)
  }

  /** Ids this connection handed out and the client has not completed. */
  get inUse (): number {
    return this.#inUse.size
  }

  #find (mark: boolean): number | undefined {
    if (this.#inUse.size >= MAX_ID) return undefined
    let id = this.#counter._nextId
    if (!(id >= 1 && id <= MAX_ID)) id = 1
    for (let i = 0; i < MAX_ID; i++) {
      if (!this.#inUse.has(id) && this.#heldBySession?.(id) !== true) {
        if (mark) {
          this.#inUse.add(id)
          this.#counter._nextId = id >= MAX_ID ? 1 : id + 1
        }
        return id
      }
      id = id >= MAX_ID ? 1 : id + 1
    }
    return undefined
  }
}

const allocators = new WeakMap<Client, PacketIds>()

/** Gives the connection its allocator; a persistent session's also skips the ids its store holds. */
export function attachPacketIds (client: Client, heldBySession?: HeldBySession): PacketIds {
  const ids = new PacketIds(internals(client), heldBySession)
  allocators.set(client, ids)
  return ids
}

/** The connection's allocator (one is made for a connection that got none at CONNECT). */
export function packetIds (client: Client): PacketIds {
  return allocators.get(client) ?? attachPacketIds(client)
}
