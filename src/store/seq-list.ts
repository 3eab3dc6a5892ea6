/** What a SeqList holds: an item with a seq of its own and a mark the list sets while it is removed. */
export interface Sequenced {
  readonly seq: number
  removed: boolean
}

/** Tombstones a list keeps before it drops them in one pass. */
const COMPACT_AT = 1024

/**
 * Items in seq order, for a session queue: filled at its tail and, nearly always, emptied at its head. An add is a
 * push and a removal marks the item (a tombstone, `removed`) and moves the head past it; a map by seq cost a hash
 * insert and delete per message and about 25 bytes more per item, which a million entries loaded at start pay. An
 * item is found by seq with a binary search, which the tombstones keep valid (they keep their seq); they are dropped
 * once they outnumber the live items, or once most of the array lies behind the head.
 */
export class SeqList<T extends Sequenced> {
  /**
   * In seq order from #head on, tombstones included. Seqs only grow and the loader reads keys in order, so a push
   * keeps the order, except for an item put back after a failed write whose tombstone was already dropped: it is
   * appended and the array sorted once, at the next read (a failed batch puts back thousands, one at a time).
   */
  #list: T[] = []
  #head = 0
  #live = 0
  /** Tombstones at or after #head. */
  #dead = 0
  #unordered = false

  get size (): number {
    return this.#live
  }

  /** The item with this seq, if held. */
  get (seq: number): T | undefined {
    const i = this.#find(seq)
    const item = i < 0 ? undefined : this.#list[i]
    return item === undefined || item.removed ? undefined : item
  }

  /** The items in seq order. Removing the item just yielded is allowed; adding meanwhile is not. */
  * values (): Generator<T> {
    this.#order()
    const list = this.#list
    for (let i = this.#head; i < list.length; i++) {
      if (!list[i].removed) yield list[i]
    }
  }

  /** The items in seq order, as an array of their own. */
  snapshot (): T[] {
    this.#order()
    const out: T[] = []
    const list = this.#list
    for (let i = this.#head; i < list.length; i++) {
      if (!list[i].removed) out.push(list[i])
    }
    return out
  }

  /** Adds an item, or puts back one removed; false if the item is held already (found so only while in order). */
  add (item: T): boolean {
    const list = this.#list
    const last = list.length > this.#head ? list[list.length - 1] : undefined
    if (last === undefined || item.seq > last.seq) {
      list.push(item)
    } else if (this.#unordered) {
      // its tombstone, if still there, is dropped by the sort's pass (#order)
      list.push(item)
    } else {
      const i = this.#find(item.seq)
      if (i >= 0 && list[i] === item) {
        if (!item.removed) return false
        // its own tombstone: back in its place
        this.#dead--
      } else {
        list.push(item)
        this.#unordered = true
      }
    }
    this.#live++
    item.removed = false
    return true
  }

  /** Removes an item; false if this list does not hold it. */
  remove (item: T): boolean {
    if (item.removed) return false
    const i = this.#list[this.#head] === item ? this.#head : this.#find(item.seq)
    if (i < 0 || this.#list[i] !== item) return false
    item.removed = true
    this.#live--
    this.#dead++
    if (i === this.#head) this.#advance()
    else if (this.#dead > COMPACT_AT && this.#dead > this.#live) this.#compact()
    return true
  }

  #advance (): void {
    const list = this.#list
    while (this.#head < list.length && list[this.#head].removed) {
      this.#head++
      this.#dead--
    }
    if (this.#head === list.length) {
      this.#list = []
      this.#head = 0
    } else if (this.#head > COMPACT_AT && this.#head * 2 > list.length) {
      this.#list = list.slice(this.#head)
      this.#head = 0
    }
  }

  #compact (): void {
    this.#list = this.#list.slice(this.#head).filter(item => !item.removed)
    this.#head = 0
    this.#dead = 0
  }

  /** Sorts what was appended out of order; an item put back while its tombstone was still there is kept once. */
  #order (): void {
    if (!this.#unordered) return
    const sorted = this.#list.slice(this.#head).sort((a, b) => a.seq - b.seq)
    this.#list = sorted.filter((item, i) => !item.removed && item !== sorted[i - 1])
    this.#head = 0
    this.#dead = 0
    this.#unordered = false
  }

  /** The index of the item (live or tombstone) with this seq from the head on, or -1. */
  #find (seq: number): number {
    this.#order()
    const list = this.#list
    let lo = this.#head
    let hi = list.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const at = list[mid].seq
      if (at === seq) return mid
      if (at < seq) lo = mid + 1
      else hi = mid - 1
    }
    return -1
  }
}
