import { withDup, type Frame, type Part } from './outbound-frames.js'

interface Entry {
  kind: Frame['type']
  qos: number
  /** The pieces as first written. */
  parts: Part[]
  /** What a retransmission writes: for a PUBLISH the same pieces with DUP set, made at the first retransmission. */
  again: Part[] | undefined
  sentAt: number
  /** A QoS 2 PUBLISH the client has PUBREC'd: it is not resent, the broker's PUBREL comes next. */
  received: boolean
}

export interface Resent { publish: number, pubrel: number }

/**
 * What one connection has sent and the client has not acknowledged yet, by packet identifier, oldest send first:
 * a QoS 1 PUBLISH until PUBACK, a QoS 2 PUBLISH until PUBREC, then its PUBREL until PUBCOMP. Packet identifiers
 * are unique among unacknowledged packets [MQTT-2.3.1-2], so there are at most 65535 entries; a packet sent under
 * an identifier still held replaces the older one, which can no longer be told apart from it.
 */
export class RetransmitTracker {
  /** Map order is the order of the last send; a retransmission moves an entry to the end. */
  readonly #entries = new Map<number, Entry>()

  constructor (private readonly intervalMs: number) {}

  get size (): number {
    return this.#entries.size
  }

  /** A PUBLISH or PUBREL the broker wrote (never a retransmission). */
  sent (frame: Frame, now: number): void {
    this.#entries.delete(frame.messageId)
    this.#entries.set(frame.messageId, { kind: frame.type, qos: frame.qos, parts: frame.parts, again: undefined, sentAt: now, received: false })
  }

  /** PUBREC from the client. */
  received (messageId: number): void {
    const entry = this.#entries.get(messageId)
    if (entry?.kind === 'publish' && entry.qos === 2) entry.received = true
  }

  /** PUBACK or PUBCOMP from the client (aedes treats them alike). */
  completed (messageId: number): void {
    this.#entries.delete(messageId)
  }

  clear (): void {
    this.#entries.clear()
  }

  /**
   * Writes, oldest first, every packet unacknowledged for intervalMs since it was last sent, and stops after a
   * write the connection could not take at once (`write` returns false): the rest stay due and keep their order.
   */
  resendDue (now: number, write: (parts: readonly Part[]) => boolean): Resent {
    const resent: Resent = { publish: 0, pubrel: 0 }
    const due: Array<[number, Entry]> = []
    for (const item of this.#entries) {
      const entry = item[1]
      if (entry.received) continue
      if (now - entry.sentAt < this.intervalMs) break
      due.push(item)
    }
    for (const [id, entry] of due) {
      entry.again ??= entry.kind === 'publish' ? withDup(entry.parts) : entry.parts
      const ok = write(entry.again)
      entry.sentAt = now
      this.#entries.delete(id)
      this.#entries.set(id, entry)
      resent[entry.kind]++
      if (!ok) break
    }
    return resent
  }
}
