/** How long a QoS 1 packet id waits before it is written (the LevelDB store's LAZY_PUT_DELAY_MS). */
export const LAZY_ID_DELAY_MS = 100

interface Held {
  clientId: string
  bytes: number
  send: () => void
}

/** An entry of a session's queue, whichever mirror object stands for it. */
function keyOf (clientId: string, seq: number): string {
  return `${seq} ${clientId}`
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
  readonly #held = new Map<string, Held>()
  /** Per client: Redis still counts these entries (and their bytes) as waiting. */
  readonly #counts = new Map<string, Count>()
  #timer: NodeJS.Timeout | undefined

  hold (clientId: string, seq: number, bytes: number, send: () => void): void {
    const key = keyOf(clientId, seq)
    const before = this.#held.get(key)
    if (before !== undefined) this.#forget(key, before)
    const count = this.#counts.get(clientId) ?? { entries: 0, bytes: 0 }
    count.entries++
    count.bytes += bytes
    this.#counts.set(clientId, count)
    this.#held.set(key, { clientId, bytes, send })
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
  take (clientId: string, seq: number): boolean {
    const key = keyOf(clientId, seq)
    const held = this.#held.get(key)
    if (held === undefined) return false
    this.#forget(key, held)
    return true
  }

  /** Writes the entry's held id now (a later write needs it in Redis first). */
  release (clientId: string, seq: number): void {
    const key = keyOf(clientId, seq)
    const held = this.#held.get(key)
    if (held === undefined) return
    this.#forget(key, held)
    held.send()
  }

  /** Writes what is held (of one client, or of all). */
  flush (clientId?: string): void {
    if (clientId !== undefined && !this.#counts.has(clientId)) return
    for (const [key, held] of this.#held) {
      if (clientId !== undefined && held.clientId !== clientId) continue
      this.#forget(key, held)
      held.send()
    }
    if (this.#held.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }

  /** Drops the held ids of a session whose queue is deleted. */
  drop (clientId: string): void {
    for (const [key, held] of this.#held) if (held.clientId === clientId) this.#forget(key, held)
  }

  #forget (key: string, held: Held): void {
    this.#held.delete(key)
    const count = this.#counts.get(held.clientId)
    if (count === undefined) return
    count.entries--
    count.bytes -= held.bytes
    if (count.entries <= 0) this.#counts.delete(held.clientId)
  }
}
