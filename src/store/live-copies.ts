import type { ClientQueue } from './outgoing-index.js'
import type { EntryWaiter, QueueEntry } from './queue-entry.js'
import type { Placement } from './placement.js'

/**
 * How long a live copy sent before it was written waits for its PUBACK before it is written after all (up to twice
 * this: LazyPacketIds ticks in two generations). Its publisher's PUBACK waits as long at most (plus the write), so this
 * is short: a subscriber that keeps up answers within a few milliseconds, and one that does not costs its publishers
 * this much latency once, then its copies are written at once (LATE_ACK_BACKOFF_MS).
 */
export const LIVE_COPY_DELAY_MS = 10

/**
 * How long at most a session whose PUBACK came too late for its hold gets its live copies written at once instead:
 * until then, or until one of its PUBACKs comes back within LIVE_COPY_DELAY_MS of its message (a stall of the
 * subscriber's process is over), whichever comes first.
 */
export const LATE_ACK_BACKOFF_MS = 1000

/**
 * The sessions whose PUBACK came after a copy's hold, by client id (LATE_ACK_BACKOFF_MS): kept apart from their
 * queues, which go whenever they empty (a subscriber that acknowledges each message late has an empty queue whenever
 * its publisher, waiting for each PUBACK, sends the next one).
 */
export class LateAcks {
  readonly #until = new Map<string, number>()
  #sweepAt = 64

  noteLate (clientId: string): void {
    const now = Date.now()
    this.#until.set(clientId, now + LATE_ACK_BACKOFF_MS)
    if (this.#until.size < this.#sweepAt) return
    for (const [id, until] of this.#until) if (until <= now) this.#until.delete(id)
    this.#sweepAt = Math.max(64, 2 * this.#until.size)
  }

  /**
   * A PUBACK came for a message queued at `enqueuedAt` (epoch ms): one in time ends the session's backoff. The clock is
   * read only while some session is in backoff: this runs for every PUBACK of a queued message (a drain's included).
   */
  acknowledged (clientId: string, enqueuedAt: number): void {
    if (this.#until.size > 0 && Date.now() - enqueuedAt < LIVE_COPY_DELAY_MS) this.#until.delete(clientId)
  }

  isLate (clientId: string): boolean {
    if (this.#until.size === 0) return false
    const until = this.#until.get(clientId)
    if (until === undefined) return false
    if (until > Date.now()) return true
    this.#until.delete(clientId)
    return false
  }
}

/**
 * The queue entries of one QoS 1 message delivered before anything of it was written (Outbox#enqueueLive). The
 * promise is unchanged: the publisher's PUBACK goes only once every entry is on disk or acknowledged by its
 * subscriber (or has left its queue otherwise: a session ended, a purge). So a crash before that loses nothing
 * acknowledged: the publisher sends the message again (a QoS 1 duplicate for a subscriber that had it). What it
 * saves is the common case, a subscriber that keeps up: its PUBACK comes back before the copy's write is due, and the
 * message is then never encoded, written nor deleted. Entries the delivery did not send at once (the session is
 * offline, its Receive Maximum or packet ids are used up, a replay is under way) are written at once, as before, and
 * so are those of a session whose PUBACK came after its hold in the last LATE_ACK_BACKOFF_MS: a subscriber that works
 * on each message before acknowledging it would otherwise cost a publisher that waits for each PUBACK the whole hold
 * per message.
 * QoS 2 and retained messages are not delivered before they are written (a resend after a crash would be a second
 * delivery under a new packet id, or a retained message acknowledged and lost).
 */
export class LiveCopies implements EntryWaiter {
  readonly #placed: Placement
  readonly #write: (placed: Placement) => Promise<void> | undefined
  #remaining = 1
  readonly #barrier: () => Promise<void>
  readonly #late: LateAcks
  /** An entry left its queue unacknowledged: what that wrote (a dead letter) is on disk before `done`. */
  #unacknowledged = false
  #failure: Error | undefined
  #done: ((err?: Error) => void) | undefined

  /**
   * Marks the entries placed unwritten, each waited for from now: until acknowledged (or gone from its queue), written
   * after its hold, or, evicted before this settled, until its dead letter is written (placement.ts).
   */
  constructor (placed: Placement, write: (placed: Placement) => Promise<void> | undefined, barrier: () => Promise<void>, late: LateAcks) {
    this.#placed = placed
    this.#write = write
    this.#barrier = barrier
    this.#late = late
    const added = placed.added
    for (let i = 1; i < added.length; i += 2) {
      const entry = added[i] as QueueEntry
      entry.unwritten = placed.copies
      entry.waiter = this
      this.#remaining++
    }
  }

  /**
   * Called once the message was delivered: the copies sent at once stay held, the others are written now, and `done`
   * is called once every copy is acknowledged or written (with the error of a write that failed).
   */
  settle (done: (err?: Error) => void): void {
    this.#done = done
    const added = this.#placed.added
    for (let i = 1; i < added.length; i += 2) {
      const entry = added[i] as QueueEntry
      if (entry.waiter !== this || entry.removed || entry.unwritten === undefined) continue
      // held for its PUBACK: sent at once, to a session that has been acknowledging in time
      if (entry.inflight !== undefined && !this.#late.isLate((added[i - 1] as ClientQueue).clientId)) continue
      // written now (below): the write's outcome is this entry's
      entry.waiter = undefined
      this.#remaining--
    }
    const writing = this.#write(this.#placed)
    if (writing === undefined) this.settled()
    else writing.then(() => { this.settled() }, (err: Error) => { this.settled(err) })
  }

  late (entry: QueueEntry): void {
    const added = this.#placed.added
    for (let i = 1; i < added.length; i += 2) {
      if (added[i] === entry) this.#late.noteLate((added[i - 1] as ClientQueue).clientId)
    }
  }

  /**
   * A copy that left its queue unacknowledged (dead-lettered as too large or refused by its subscriber, expired, its
   * session ended) was never written: what reported it is queued by then, and `done` waits for the batch holding it,
   * or a crash before that would lose the message with no trace of it.
   */
  settled (err?: Error, unacknowledged = false): void {
    if (err !== undefined) this.#failure ??= err
    if (unacknowledged) this.#unacknowledged = true
    if (--this.#remaining > 0) return
    const done = this.#done
    this.#done = undefined
    if (done === undefined) return
    if (!this.#unacknowledged) {
      done(this.#failure)
      return
    }
    this.#barrier().then(() => { done(this.#failure) }, (failed: Error) => { done(this.#failure ?? failed) })
  }
}
