import type { QueueEntry } from '../outgoing-index.js'

/** How long a QoS 1 packet id waits before it is written (the LevelDB store's LAZY_PUT_DELAY_MS). */
export const LAZY_ID_DELAY_MS = 100

interface Held {
  clientId: string
  bytes: number
  send: () => void
}

interface Count {
  entries: number
  bytes: number
}

/**
 * QoS 1 packet ids held back from Redis: the PUBACK usually comes back first, and then the id is never written and
 * the acknowledgement deletes the entry by its broker counter (one script per message instead of two). A crash
 * before an id is written resends the message under a new id after the restart: a QoS 1 duplicate, never a loss.
 * What is held is written after LAZY_ID_DELAY_MS, before a replay of its session, and by `flush` (barrier, close).
 */
export class LazyIds {
  readonly #held = new Map<QueueEntry, Held>()
  /** Per client: Redis still counts these entries (and their bytes) as waiting. */
  readonly #counts = new Map<string, Count>()
  #timer: NodeJS.Timeout | undefined

  hold (entry: QueueEntry, clientId: string, send: () => void): void {
    if (!this.#held.has(entry)) {
      const count = this.#counts.get(clientId) ?? { entries: 0, bytes: 0 }
      count.entries++
      count.bytes += entry.bytes
      this.#counts.set(clientId, count)
    }
    this.#held.set(entry, { clientId, bytes: entry.bytes, send })
    // unref: a process that exits without closing the store loses only ids, as a crash does
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined
      this.flush()
    }, LAZY_ID_DELAY_MS).unref()
  }

  /** What Redis counts as waiting in the client's queue although it is in flight. */
  held (clientId: string): Count | undefined {
    return this.#counts.get(clientId)
  }

  /** Forgets the entry's held id; true if one was held (it never reached Redis). */
  take (entry: QueueEntry): boolean {
    const held = this.#held.get(entry)
    if (held === undefined) return false
    this.#forget(entry, held)
    return true
  }

  /** Writes the entry's held id now (a later write needs it in Redis first). */
  release (entry: QueueEntry): void {
    const held = this.#held.get(entry)
    if (held === undefined) return
    this.#forget(entry, held)
    held.send()
  }

  /** Writes what is held (of one client, or of all). */
  flush (clientId?: string): void {
    if (clientId !== undefined && !this.#counts.has(clientId)) return
    for (const [entry, held] of this.#held) {
      if (clientId !== undefined && held.clientId !== clientId) continue
      this.#forget(entry, held)
      held.send()
    }
    if (this.#held.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }

  /** Drops the held ids of a session whose queue is deleted. */
  drop (clientId: string): void {
    for (const [entry, held] of this.#held) if (held.clientId === clientId) this.#forget(entry, held)
  }

  #forget (entry: QueueEntry, held: Held): void {
    this.#held.delete(entry)
    const count = this.#counts.get(held.clientId)
    if (count === undefined) return
    count.entries--
    count.bytes -= held.bytes
    if (count.entries <= 0) this.#counts.delete(held.clientId)
  }
}
