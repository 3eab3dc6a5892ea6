import type { Entry } from './group.js'

interface Due<H> { at: number, entry: Entry<H> }

/**
 * Messages waiting out their retry backoff, earliest due first (a binary heap: a downstream outage can delay
 * thousands at once). An entry that left the delayed state another way (a late acknowledgement, its group removed)
 * stays here until its time comes and is then skipped.
 */
export class RetrySchedule<H> {
  readonly #heap: Array<Due<H>> = []

  get size (): number {
    return this.#heap.length
  }

  /** When the earliest entry falls due; undefined when none waits. */
  get next (): number | undefined {
    return this.#heap[0]?.at
  }

  add (entry: Entry<H>, at: number): void {
    const heap = this.#heap
    heap.push({ at, entry })
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent].at <= heap[i].at) break
      ;[heap[parent], heap[i]] = [heap[i], heap[parent]]
      i = parent
    }
  }

  /** Entries due by `now` that still wait for this due time, earliest first. */
  takeDue (now: number): Array<Entry<H>> {
    const out: Array<Entry<H>> = []
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const { at, entry } = this.#pop()
      if (entry.state === 'delayed' && entry.dueAt === at) out.push(entry)
    }
    return out
  }

  #pop (): Due<H> {
    const heap = this.#heap
    const top = heap[0]
    const last = heap.pop() as Due<H>
    if (heap.length > 0) {
      heap[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < heap.length && heap[l].at < heap[m].at) m = l
        if (r < heap.length && heap[r].at < heap[m].at) m = r
        if (m === i) break
        ;[heap[m], heap[i]] = [heap[i], heap[m]]
        i = m
      }
    }
    return top
  }
}
