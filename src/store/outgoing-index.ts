import type { QueueEntry } from './queue-entry.js'
import { SeqList } from './seq-list.js'
import type { SessionInfo } from './types.js'

/** A packet of the queue as the replay sends it: a PUBLISH (by broker id and counter) or a PUBREL (by packet id). */
export interface OwedPacket {
  cmd?: string
  messageId?: number | null
  brokerId?: string | null
  brokerCounter?: number
}

/** What every session queue holds together (entries, waiting or in flight, and their payload bytes): the broker-wide bound. */
export interface QueueTotals {
  entries: number
  bytes: number
}

/** A session queue as the admin API shows it. */
export type QueueInfo = Pick<SessionInfo, 'queued' | 'inflight' | 'queuedBytes' | 'oldestQueuedAt'>

/**
 * One client's outgoing queue: entries in seq (= FIFO) order (a SeqList) plus the two lookups aedes needs, by
 * (brokerId, brokerCounter) for outgoingUpdate and by messageId for PUBACK/PUBREC/PUBCOMP.
 */
export class ClientQueue {
  readonly clientId: string
  readonly enc: string
  readonly #entries = new SeqList<QueueEntry>()
  readonly #byCounter = new Map<string, Map<number, QueueEntry>>()
  /** One entry per id, or (an id reused while an older entry still holds it) the entries in seq order. */
  readonly #byMessageId = new Map<number, QueueEntry | QueueEntry[]>()
  bytes = 0
  inflightCount = 0
  waitingBytes = 0

  readonly #totals: QueueTotals

  constructor (clientId: string, enc: string, totals: QueueTotals) {
    this.clientId = clientId
    this.enc = enc
    this.#totals = totals
  }

  get size (): number {
    return this.#entries.size
  }

  get waiting (): number {
    return this.#entries.size - this.inflightCount
  }

  /** The entry with this seq, if the queue holds it. */
  get (seq: number): QueueEntry | undefined {
    return this.#entries.get(seq)
  }

  has (seq: number): boolean {
    return this.#entries.get(seq) !== undefined
  }

  /** The entries in seq (FIFO) order. Removing the entry just yielded is allowed; adding meanwhile is not. */
  values (): Generator<QueueEntry> {
    return this.#entries.values()
  }

  /** The entries in seq order, as an array of their own. */
  snapshot (): QueueEntry[] {
    return this.#entries.snapshot()
  }

  add (entry: QueueEntry): void {
    if (!this.#entries.add(entry)) return
    this.bytes += entry.bytes
    this.#totals.entries++
    this.#totals.bytes += entry.bytes
    if (entry.brokerId != null && entry.brokerCounter !== undefined) {
      let counters = this.#byCounter.get(entry.brokerId)
      if (counters === undefined) {
        counters = new Map()
        this.#byCounter.set(entry.brokerId, counters)
      }
      counters.set(entry.brokerCounter, entry)
    }
    if (entry.messageId !== undefined) {
      this.inflightCount++
      this.#indexMessageId(entry)
    } else {
      this.waitingBytes += entry.bytes
    }
  }

  remove (entry: QueueEntry): void {
    if (!this.#entries.remove(entry)) return
    this.bytes -= entry.bytes
    this.#totals.entries--
    this.#totals.bytes -= entry.bytes
    if (entry.brokerId != null && entry.brokerCounter !== undefined) {
      const counters = this.#byCounter.get(entry.brokerId)
      if (counters?.get(entry.brokerCounter) === entry) {
        counters.delete(entry.brokerCounter)
        if (counters.size === 0) this.#byCounter.delete(entry.brokerId)
      }
    }
    if (entry.messageId !== undefined) {
      this.inflightCount--
      this.#unindexMessageId(entry)
    } else {
      this.waitingBytes -= entry.bytes
    }
    const waiter = entry.waiter
    if (waiter !== undefined) {
      entry.waiter = undefined
      waiter.settled(undefined, true)
    }
  }

  /**
   * Puts entries back after a failed write (entries of this queue removed since). A failed batch restores its entries
   * one undo at a time (thousands in a disk-full storm, in any order): an entry whose tombstone is still in order goes
   * back in its place, the others are appended and the order mended once, at the next read, not once per entry.
   */
  restore (entries: QueueEntry[]): void {
    for (const entry of entries) {
      if (entry.removed) this.add(entry)
    }
  }

  byCounter (brokerId: string, brokerCounter: number): QueueEntry | undefined {
    return this.#byCounter.get(brokerId)?.get(brokerCounter)
  }

  /** The oldest entry holding this messageId (the reference implementation searches in queue order too). */
  byMessageId (messageId: number): QueueEntry | undefined {
    const held = this.#byMessageId.get(messageId)
    return Array.isArray(held) ? held[0] : held
  }

  /**
   * Whether the client is still owed this packet: a PUBLISH neither acknowledged (PUBACK) nor received (PUBREC)
   * since, under this packet id once it has one; a PUBREL not completed (PUBCOMP). A PUBREL is found by its id only,
   * which after the PUBCOMP may already carry a new message.
   */
  owes (packet: OwedPacket): boolean {
    if (packet.cmd === 'pubrel') return packet.messageId != null && this.byMessageId(packet.messageId)?.cmd === 'pubrel'
    if (packet.brokerId == null || packet.brokerCounter === undefined) return false
    const entry = this.byCounter(packet.brokerId, packet.brokerCounter)
    return entry !== undefined && entry.cmd === 'publish' && (entry.messageId === undefined || entry.messageId === packet.messageId)
  }

  assignMessageId (entry: QueueEntry, messageId: number): void {
    if (entry.messageId === messageId) return
    if (entry.messageId === undefined) {
      this.inflightCount++
      this.waitingBytes -= entry.bytes
    } else {
      this.#unindexMessageId(entry)
    }
    entry.messageId = messageId
    this.#indexMessageId(entry)
  }

  setBytes (entry: QueueEntry, bytes: number): void {
    this.bytes += bytes - entry.bytes
    this.#totals.bytes += bytes - entry.bytes
    if (entry.messageId === undefined) this.waitingBytes += bytes - entry.bytes
    entry.bytes = bytes
  }

  /** The oldest entries not in flight, for dropOldest. */
  * oldestWaiting (): Generator<QueueEntry> {
    for (const entry of this.values()) {
      if (entry.messageId === undefined) yield entry
    }
  }

  oldestEnqueuedAt (): number | undefined {
    for (const entry of this.values()) return entry.enqueuedAt
    return undefined
  }

  /** Sizes, in-flight count and oldest entry, as the admin API shows a session. */
  info (): QueueInfo {
    const oldest = this.oldestEnqueuedAt()
    return { queued: this.size, inflight: this.inflightCount, queuedBytes: this.bytes, ...(oldest === undefined ? {} : { oldestQueuedAt: oldest }) }
  }

  /** The highest broker counter of this broker's messages in the queue (0: none). */
  maxCounter (brokerId: string): number {
    let max = 0
    for (const entry of this.values()) {
      if (entry.brokerId === brokerId && entry.brokerCounter !== undefined && entry.brokerCounter > max) max = entry.brokerCounter
    }
    return max
  }

  #indexMessageId (entry: QueueEntry): void {
    const id = entry.messageId as number
    const held = this.#byMessageId.get(id)
    if (held === undefined) {
      this.#byMessageId.set(id, entry)
      return
    }
    const list = Array.isArray(held) ? held : [held]
    let i = list.length
    while (i > 0 && list[i - 1].seq > entry.seq) i--
    list.splice(i, 0, entry)
    if (list !== held) this.#byMessageId.set(id, list)
  }

  #unindexMessageId (entry: QueueEntry): void {
    const id = entry.messageId as number
    const held = this.#byMessageId.get(id)
    if (held === entry) {
      this.#byMessageId.delete(id)
      return
    }
    if (!Array.isArray(held)) return
    const i = held.indexOf(entry)
    if (i >= 0) held.splice(i, 1)
    if (held.length === 1) this.#byMessageId.set(id, held[0])
    else if (held.length === 0) this.#byMessageId.delete(id)
  }
}
