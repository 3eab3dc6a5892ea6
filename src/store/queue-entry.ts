import type { CopyEncodings } from './codec.js'
import { outgoingKey } from './layout.js'

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
