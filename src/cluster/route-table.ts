import { QlobberDedup } from 'qlobber'

/**
 * Which nodes need a message: every node's topic filters, replicated from Redis. The local node's filters are
 * counted (several clients, one filter); each other node's are a set, matched together in one trie.
 */
export class RouteTable {
  readonly #matcher = new QlobberDedup<string>({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true })
  readonly #remote = new Map<string, { version: number, filters: Set<string> }>()
  readonly #self: string

  constructor (self: string) {
    this.#self = self
  }

  /** The other nodes with a filter matching the topic. */
  nodesFor (topic: string): Set<string> {
    return this.#matcher.match(topic)
  }

  /** The node's filters as read from Redis at `version`, replacing what was known. */
  replace (nodeId: string, version: number, filters: Iterable<string>): void {
    if (nodeId === this.#self) return
    this.drop(nodeId)
    const set = new Set(filters)
    for (const filter of set) this.#matcher.add(filter, nodeId)
    this.#remote.set(nodeId, { version, filters: set })
  }

  /**
   * One change announced by the node; false when it does not follow the version known (a change was missed, or
   * the node is not known yet), and the node's filters must be read again.
   */
  apply (nodeId: string, version: number, op: '+' | '-', filter: string): boolean {
    if (nodeId === this.#self) return true
    const node = this.#remote.get(nodeId)
    if (node === undefined || version !== node.version + 1) return false
    node.version = version
    if (op === '+' && !node.filters.has(filter)) {
      node.filters.add(filter)
      this.#matcher.add(filter, nodeId)
    } else if (op === '-' && node.filters.delete(filter)) {
      this.#matcher.remove(filter, nodeId)
    }
    return true
  }

  drop (nodeId: string): void {
    const node = this.#remote.get(nodeId)
    if (node === undefined) return
    for (const filter of node.filters) this.#matcher.remove(filter, nodeId)
    this.#remote.delete(nodeId)
  }

  versionOf (nodeId: string): number | undefined {
    return this.#remote.get(nodeId)?.version
  }

  nodes (): string[] {
    return [...this.#remote.keys()]
  }

  filterCount (nodeId: string): number {
    return this.#remote.get(nodeId)?.filters.size ?? 0
  }
}
