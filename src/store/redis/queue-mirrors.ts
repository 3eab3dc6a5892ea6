import { ClientQueue, type QueueTotals } from '../outgoing-index.js'
import type { QueueEntry } from '../queue-entry.js'
import type { Change } from './queue-entries.js'

/**
 * This node's mirrors of the session queues it replays (see RedisOutbox): each follows this node's own changes and
 * is rebuilt from Redis at each replay, keeping the changes made while Redis was being read.
 */
export class QueueMirrors {
  readonly #queues: Map<string, ClientQueue>
  readonly #totals: QueueTotals
  /** Per session whose mirror is being rebuilt: this node's changes since its read was sent. */
  readonly #reloading = new Map<string, Set<Change[]>>()
  /**
   * Per session rebuilt here: the last seq its queue had given out at the last rebuild. An entry up to it that the
   * mirror does not hold had been deleted by then (replayed and acknowledged, say): learning it again would send it
   * twice. Kept while the session is here (`forget` when it is not).
   */
  readonly #readUpTo = new Map<string, number>()

  constructor (queues: Map<string, ClientQueue>, totals: QueueTotals) {
    this.#queues = queues
    this.#totals = totals
  }

  /** Applies a change to the session's mirror (`create`: even if it has none), and records it for a reload under way. */
  change (clientId: string, create: boolean, change: Change): void {
    const mirror = create ? this.#mirrorFor(clientId) : this.#queues.get(clientId)
    if (mirror !== undefined) change(mirror)
    for (const changes of this.#reloading.get(clientId) ?? []) changes.push(change)
  }

  /**
   * Rebuilds a session's mirror from what `read` returns. This node's changes made after the read was sent are not
   * in it: they are recorded meanwhile and applied to the new mirror (each change is idempotent).
   */
  async reload (clientId: string, read: () => Promise<{ entries: QueueEntry[], upTo: number }>): Promise<ClientQueue | undefined> {
    const changes: Change[] = []
    let active = this.#reloading.get(clientId)
    if (active === undefined) this.#reloading.set(clientId, active = new Set())
    active.add(changes)
    let entries: QueueEntry[]
    try {
      const got = await read()
      entries = got.entries
      this.#readUpTo.set(clientId, got.upTo)
    } finally {
      active.delete(changes)
      if (active.size === 0) this.#reloading.delete(clientId)
    }
    const old = this.#queues.get(clientId)
    const mirror = new ClientQueue(clientId, clientId, this.#totals)
    for (const entry of entries) {
      const known = old?.get(entry.seq)
      if (known !== undefined && known.messageId === entry.messageId) {
        entry.sentOn = known.sentOn
        entry.inflight = known.inflight
      }
      mirror.add(entry)
    }
    if (old !== undefined) for (const entry of old.snapshot()) old.remove(entry)
    for (const change of changes) change(mirror)
    if (mirror.size === 0) {
      this.#queues.delete(clientId)
      return undefined
    }
    this.#queues.set(clientId, mirror)
    return mirror
  }

  /** Whether an entry another node made, that this node learns of now, was deleted before this node's last rebuild. */
  deletedBefore (clientId: string, seq: number): boolean {
    return seq <= (this.#readUpTo.get(clientId) ?? 0) && this.#queues.get(clientId)?.has(seq) !== true
  }

  /** The session is not here (or has ended): what was known of its last rebuild goes. */
  forget (clientId: string): void {
    this.#readUpTo.delete(clientId)
  }

  #mirrorFor (clientId: string): ClientQueue {
    let mirror = this.#queues.get(clientId)
    if (mirror === undefined) {
      mirror = new ClientQueue(clientId, clientId, this.#totals)
      this.#queues.set(clientId, mirror)
    }
    return mirror
  }
}
