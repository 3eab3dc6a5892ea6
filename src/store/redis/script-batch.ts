import type { WriteOrder } from './write-order.js'

/** One item of a batch: its KEYS and ARGV, appended to the call's. */
export interface BatchItem {
  keys: string[]
  args: Array<string | Buffer | number>
}

interface Waiting<R> {
  item: BatchItem
  resolve: (result: R) => void
  reject: (err: unknown) => void
}

/** Items per script call at most (a call's arguments stay well below what Redis takes in one command). */
const MAX_ITEMS = 500

/**
 * Gathers the calls of one script made in one turn of the event loop into one call (sent at setImmediate, after
 * every socket read of the turn), in call order: one EVALSHA per batch instead of one per message. `run` sends the
 * items and returns one result per item; each item's promise settles once Redis has answered for the whole call,
 * never before (a publish is acknowledged only after the script that stored it returned).
 *
 * The call is tracked by the WriteOrder when it is sent (a replica WAIT counts it from then), the items when they are
 * added (a later call that sends nothing resolves after them). `flush` sends what is gathered now: a write of the
 * same keys that does not go through the batch must not overtake it (RedisOutbox calls it before each of those).
 */
export class ScriptBatch<R> {
  readonly #run: (items: BatchItem[]) => Promise<R[]>
  readonly #order: WriteOrder
  #waiting: Array<Waiting<R>> = []
  #scheduled: NodeJS.Immediate | undefined

  constructor (order: WriteOrder, run: (items: BatchItem[]) => Promise<R[]>) {
    this.#order = order
    this.#run = run
  }

  add (item: BatchItem): Promise<R> {
    const result = new Promise<R>((resolve, reject) => { this.#waiting.push({ item, resolve, reject }) })
    this.#scheduled ??= setImmediate(() => { this.flush() })
    return this.#order.hold(result)
  }

  flush (): void {
    if (this.#scheduled !== undefined) {
      clearImmediate(this.#scheduled)
      this.#scheduled = undefined
    }
    const all = this.#waiting
    this.#waiting = []
    for (let at = 0; at < all.length; at += MAX_ITEMS) {
      const part = all.slice(at, at + MAX_ITEMS)
      this.#order.track(this.#run(part.map(w => w.item))).then((results) => {
        part.forEach((w, i) => { w.resolve(results[i]) })
      }, (err: unknown) => {
        for (const w of part) w.reject(err)
      })
    }
  }
}
