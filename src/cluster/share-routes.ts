import { QlobberDedup } from 'qlobber'

/**
 * Which shared groups a message goes to: every group of the cluster (the hash `shares` in Redis, kept up to date by
 * its announcements and read again at each heartbeat), by its filter. Which node owns a group does not matter to the
 * sender: a group's messages go to its inbox in Redis, which its owner reads.
 */
export class ShareRoutes {
  readonly #matcher = new QlobberDedup<string>({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true })
  readonly #filters = new Map<string, string>()

  /** The keys (`<group>/<filter>`) of the groups whose filter matches the topic. */
  match (topic: string): Set<string> {
    return this.#filters.size === 0 ? EMPTY : this.#matcher.match(topic)
  }

  add (key: string, filter: string): void {
    if (this.#filters.get(key) === filter) return
    this.remove(key)
    this.#filters.set(key, filter)
    this.#matcher.add(filter, key)
  }

  remove (key: string): void {
    const filter = this.#filters.get(key)
    if (filter === undefined) return
    this.#filters.delete(key)
    this.#matcher.remove(filter, key)
  }

  /** Every group as Redis has it now. */
  replace (all: Record<string, string>): void {
    for (const key of [...this.#filters.keys()]) if (all[key] === undefined) this.remove(key)
    for (const [key, filter] of Object.entries(all)) this.add(key, filter)
  }

  has (key: string): boolean {
    return this.#filters.has(key)
  }

  keys (): IterableIterator<string> {
    return this.#filters.keys()
  }

  get size (): number {
    return this.#filters.size
  }
}

const EMPTY: Set<string> = new Set()
