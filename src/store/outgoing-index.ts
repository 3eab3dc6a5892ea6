import type { CopyEncodings } from './codec.js'
import { outgoingKey } from './layout.js'
import type { SessionInfo } from './types.js'

/**
 * One queued message (or PUBREL) of a session. A million of them may be loaded at start, so an entry holds no
 * string of its own: its key is made from the queue's encoded client id and its seq when first asked for (kept
 * from then on), and its broker id is the one string every entry from that broker shares (see Outbox#load).
 */
export class QueueEntry {
  readonly seq: number
  /** The client id as encoded in keys (the queue's, shared). */
  readonly enc: string
  cmd: 'publish' | 'pubrel'
  readonly brokerId: string | undefined
  readonly brokerCounter: number | undefined
  messageId: number | undefined
  qos: number
  bytes: number
  readonly enqueuedAt: number
  /** Connection (client object) the messageId was assigned on; undefined after a restart. In memory only. */
  sentOn: number | undefined
  /** The packet as sent, kept while in flight so a PUBACK is answered without a read. In memory only. */
  inflight: Record<string, unknown> | undefined
  removed = false
  /**
   * Set while not on disk nor staged: the message of a live enqueue (LiveCopies), whose value this encodes
   * (`unwritten.get(qos, false)`; a live copy never carries RETAIN). In memory only.
   */
  unwritten: CopyEncodings | undefined = undefined
  /** The publish waiting for this entry to be acknowledged or written before its own PUBACK (LiveCopies). */
  waiter: EntryWaiter | undefined = undefined
  #key: string | undefined

  constructor (f: EntryFields) {
    this.seq = f.seq
    this.enc = f.enc
    this.cmd = f.cmd
    this.brokerId = f.brokerId
    this.brokerCounter = f.brokerCounter
    this.messageId = f.messageId
    this.qos = f.qos
    this.bytes = f.bytes
    this.enqueuedAt = f.enqueuedAt
    this.sentOn = f.sentOn
    this.inflight = f.inflight
    this.#key = f.key
  }

  /** `o!<client>!<seq>` */
  get key (): string {
    return (this.#key ??= outgoingKey(this.enc, this.seq))
  }
}

/** Told once an entry it waits for is acknowledged (or otherwise left its queue), or written, or failed to be. */
export interface EntryWaiter {
  /** `unacknowledged`: the entry left its queue otherwise than by its subscriber's successful PUBACK. */
  settled: (err?: Error, unacknowledged?: boolean) => void
  /** The entry's PUBACK did not come within its hold: it is being written instead. */
  late?: (entry: QueueEntry) => void
}

type EntryFields = Pick<QueueEntry, 'seq' | 'enc' | 'cmd' | 'brokerId' | 'brokerCounter' | 'qos' | 'bytes' | 'enqueuedAt'> &
  Partial<Pick<QueueEntry, 'messageId' | 'sentOn' | 'inflight' | 'key'>>

/** A queue entry; `key` is worth passing only when the caller made it anyway (an enqueue writes it). */
export function queueEntry (f: EntryFields): QueueEntry {
  return new QueueEntry(f)
}

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
 * One client's outgoing queue: entries in seq (= FIFO) order plus the two lookups aedes needs, by
 * (brokerId, brokerCounter) for outgoingUpdate and by messageId for PUBACK/PUBREC/PUBCOMP.
 */
export class ClientQueue {
  readonly clientId: string
  readonly enc: string
  /**
   * By seq. Insertion order is seq order (seqs only grow, and the loader reads keys in order) except after a
   * restore, which appends and marks the map for one sort at the next read.
   */
  #entries = new Map<number, QueueEntry>()
  #unordered = false
  /** The highest seq ever added: an add below it breaks the insertion order. */
  #highestSeq = 0
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

  /** The entries in seq (FIFO) order. */
  get entries (): ReadonlyMap<number, QueueEntry> {
    if (this.#unordered) {
      this.#entries = new Map([...this.#entries].sort((a, b) => a[0] - b[0]))
      this.#unordered = false
    }
    return this.#entries
  }

  get size (): number {
    return this.#entries.size
  }

  get waiting (): number {
    return this.#entries.size - this.inflightCount
  }

  add (entry: QueueEntry): void {
    this.#entries.set(entry.seq, entry)
    if (entry.seq > this.#highestSeq) this.#highestSeq = entry.seq
    else this.#unordered = true
    entry.removed = false
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
    if (entry.removed || this.#entries.get(entry.seq) !== entry) return
    entry.removed = true
    this.#entries.delete(entry.seq)
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
   * Puts entries back after a failed write. A failed batch restores its entries one undo at a time (thousands in a
   * disk-full storm), so the order is mended once, at the next read, not once per entry.
   */
  restore (entries: QueueEntry[]): void {
    for (const entry of entries) {
      if (this.#entries.has(entry.seq)) continue
      this.add(entry)
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
    for (const entry of this.entries.values()) {
      if (entry.messageId === undefined) yield entry
    }
  }

  oldestEnqueuedAt (): number | undefined {
    for (const entry of this.entries.values()) return entry.enqueuedAt
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
    for (const entry of this.entries.values()) {
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
