import type { Redis } from 'ioredis'
import type { ClusterKeys } from './keys.js'

/**
 * One change of a node's filter set, atomically: the set, its version, and the announcement carrying that version
 * (a reader that sees a gap in the versions reads the set again). `*` replaces the whole set (a node's start).
 */
const CHANGE = `
local version = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if ARGV[2] == '+' then
  redis.call('SADD', KEYS[1], ARGV[3])
elseif ARGV[2] == '-' then
  redis.call('SREM', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
  for i = 3, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
end
redis.call('PUBLISH', KEYS[3], ARGV[1] .. '\\n' .. version .. '\\n' .. ARGV[2] .. (ARGV[2] == '*' and '' or ARGV[3]))
return version
`

type ChangeCommand = (k1: string, k2: string, k3: string, nodeId: string, op: string, ...filters: string[]) => Promise<number>

/**
 * The local node's topic filters, counted by listener (several clients, one filter), published to Redis when a
 * filter is first needed and when it no longer is. A SUBACK waits for the filter to be in Redis, so a message
 * published anywhere once the other nodes have read the announcement reaches it (docs/cluster.md).
 */
export class LocalFilters {
  readonly #counts = new Map<string, number>()
  readonly #redis: Redis & { culexFilterChange?: ChangeCommand }
  readonly #nodeId: string
  readonly #keys: ClusterKeys
  /** The last change sent for each filter: the next one for it waits behind it. */
  readonly #inFlight = new Map<string, Promise<unknown>>()

  constructor (redis: Redis, nodeId: string, keys: ClusterKeys) {
    redis.defineCommand('culexFilterChange', { numberOfKeys: 3, lua: CHANGE })
    this.#redis = redis
    this.#nodeId = nodeId
    this.#keys = keys
  }

  #send (op: '+' | '-' | '*', filters: string[]): Promise<number> {
    return (this.#redis.culexFilterChange as ChangeCommand).call(this.#redis, this.#keys.filters(this.#nodeId), this.#keys.filterVersions, this.#keys.filterChanges, this.#nodeId, op, ...filters)
  }

  /** Resolves once Redis knows the node needs `filter`. */
  add (filter: string): Promise<unknown> {
    const n = (this.#counts.get(filter) ?? 0) + 1
    this.#counts.set(filter, n)
    if (n > 1) return this.#inFlight.get(filter) ?? Promise.resolve()
    return this.#track(filter, this.#send('+', [filter]))
  }

  remove (filter: string): void {
    const n = (this.#counts.get(filter) ?? 0) - 1
    if (n > 0) {
      this.#counts.set(filter, n)
      return
    }
    if (n < 0) return
    this.#counts.delete(filter)
    this.#track(filter, this.#send('-', [filter])).catch(() => {})
  }

  /** The whole set again: at start, and when the node finds its registration was removed (declared dead). */
  async publishAll (): Promise<void> {
    await this.#send('*', [...this.#counts.keys()])
  }

  get size (): number {
    return this.#counts.size
  }

  #track (filter: string, p: Promise<unknown>): Promise<unknown> {
    this.#inFlight.set(filter, p)
    const done = (): void => { if (this.#inFlight.get(filter) === p) this.#inFlight.delete(filter) }
    p.then(done, done)
    return p
  }
}
