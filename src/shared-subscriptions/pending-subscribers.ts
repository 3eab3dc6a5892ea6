/**
 * The clients whose granted `$share/` filter aedes is about to subscribe, by filter. aedes' broker.subscribe gets
 * the filter and the subscription's function only; the client is the one noted for that filter whose subscription
 * holds that function. A client is opaque here: `holds` and `closed` read it.
 */
export class PendingSubscribers<C extends object> {
  readonly #byFilter = new Map<string, Set<C>>()
  readonly #holds: (client: C, filter: string, func: unknown) => boolean
  readonly #closed: (client: C) => boolean

  constructor (holds: (client: C, filter: string, func: unknown) => boolean, closed: (client: C) => boolean) {
    this.#holds = holds
    this.#closed = closed
  }

  note (client: C, filter: string): void {
    let clients = this.#byFilter.get(filter)
    if (clients === undefined) this.#byFilter.set(filter, clients = new Set())
    clients.add(client)
  }

  /** The client subscribing `func` to `filter`, no longer noted; closed clients met on the way are dropped. */
  take (filter: string, func: unknown): C | undefined {
    const clients = this.#byFilter.get(filter)
    if (clients === undefined) return undefined
    let found: C | undefined
    for (const client of clients) {
      if (this.#closed(client)) clients.delete(client)
      else if (found === undefined && this.#holds(client, filter, func)) found = client
    }
    if (found !== undefined) clients.delete(found)
    if (clients.size === 0) this.#byFilter.delete(filter)
    return found
  }

  /**
   * A connection that closes before aedes subscribes what was noted (its subscription record still being written,
   * say) would otherwise stay noted, the closed client with it, until the same filter is subscribed again.
   */
  forget (client: C): void {
    for (const [filter, clients] of this.#byFilter) {
      if (clients.delete(client) && clients.size === 0) this.#byFilter.delete(filter)
    }
  }
}
