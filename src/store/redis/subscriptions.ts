import type { Redis } from 'ioredis'
import { SubscriptionIndex } from '../subscription-index.js'
import type { SubscriptionInput, SubscriptionRecord, TopicSubscription } from '../types.js'
import { field, logChange, type LogEntry } from './change-log.js'
import type { RedisKeys } from './keys.js'
import type { MatchCheck } from './queue-entries.js'
import { scanKeys } from './scan.js'

/** How many subscription changes the log keeps; a node further behind than this reloads every subscription. */
export const LOG_LENGTH = 100_000

/**
 * Persistent subscriptions: the truth is one Redis hash per client; each node matches topics against a local
 * matcher (SubscriptionIndex, the LevelDB store's) that it keeps fresh from a change log, a Redis stream every
 * change is appended to in the same transaction, numbered by a generation counter. A match is answered locally
 * with the generation it reflects; the enqueue that follows it is refused by Redis if the generation has moved on,
 * and then `fresh` reads the log past the last entry seen and reloads the clients other nodes changed (a node that
 * fell further behind than the log keeps, the generations jump, reloads everything) before matching again.
 */
export class RedisSubscriptions {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #node: string
  readonly #matchQos0: boolean
  #index: SubscriptionIndex
  #lastId = '0-0'
  #gen = 0
  /** Matches resolve in call order, like the LevelDB store's (aedes drops a publish overtaken by a newer one). */
  #tail: Promise<unknown> = Promise.resolve()

  constructor (redis: Redis, keys: RedisKeys, node: string, matchQos0: boolean) {
    this.#redis = redis
    this.#keys = keys
    this.#node = node
    this.#matchQos0 = matchQos0
    this.#index = new SubscriptionIndex({ matchQos0 })
  }

  get index (): SubscriptionIndex {
    return this.#index
  }

  /** Loads every subscription; the log position is taken first, so changes made during the load are replayed. */
  async load (): Promise<void> {
    const [last, gen] = await Promise.all([this.#redis.xrevrange(this.#keys.subsLog, '+', '-', 'COUNT', 1), this.#redis.get(this.#keys.subsGen)])
    const index = new SubscriptionIndex({ matchQos0: this.#matchQos0 })
    const { match, clientId } = this.#keys.perClient('subs')
    for await (const keys of scanKeys(this.#redis, match)) {
      const all = await Promise.all(keys.map(async key => await this.#redis.hgetall(key)))
      keys.forEach((key, i) => { loadClient(index, clientId(key), all[i]) })
    }
    this.#index = index
    this.#lastId = last[0]?.[0] ?? '0-0'
    this.#gen = Number(gen ?? 0)
  }

  /** Writes the change and its log entry in one transaction; the local matcher has it at once. */
  async add (clientId: string, subs: SubscriptionInput[]): Promise<void> {
    const change = this.#index.add(clientId, subs)
    const puts: string[] = []
    for (const [filter, record] of change.puts) puts.push(filter, JSON.stringify(record))
    await this.#write(clientId, puts, [...change.dels], change.undo)
  }

  /** Every filter given is deleted in Redis: the matcher may not have seen a subscription another node made. */
  async remove (clientId: string, filters: string[]): Promise<void> {
    const { undo } = this.#index.remove(clientId, filters)
    await this.#write(clientId, [], [...new Set(filters)], undo)
  }

  /**
   * The commands that drop every subscription of a client, for a transaction of the caller's (end of a session).
   * `logged` takes the transaction's results: the log entry must be its last command. A client that had none (every
   * clean CONNECT of a client without a session) logs no change: the other nodes would each read it and match
   * their enqueues again for nothing.
   */
  /**
   * Takes a client's subscriptions out of the matcher; the caller runs DROP_ALL (in END_SESSION) with these keys and
   * arguments, then hands its reply to `logged`, or calls `undo` if it failed or did not run.
   */
  dropAll (clientId: string): { keys: string[], args: Array<string | number>, undo: () => void, logged: (reply: [number, string | Buffer]) => void } {
    const { undo } = this.#index.clean(clientId)
    return {
      keys: [this.#keys.subs(clientId), this.#keys.subsGen, this.#keys.subsLog],
      args: [clientId, this.#node, LOG_LENGTH],
      undo,
      logged: ([gen, id]) => { this.#advance([Number(gen), String(id)]) }
    }
  }

  /** Subscriptions of a client, read from Redis (another node may have changed them). */
  async byClient (clientId: string): Promise<Array<SubscriptionRecord & { topic: string }>> {
    const all = await this.#redis.hgetall(this.#keys.subs(clientId))
    return Object.entries(all).map(([topic, json]) => ({ ...(JSON.parse(json) as SubscriptionRecord), topic }))
  }

  /** The generation of the subscriptions the matcher has (the log entries it has applied, its own writes included). */
  get generation (): number {
    return this.#gen
  }

  /**
   * The local matcher as it is, in call order with the refreshes, without a round trip: the enqueue that follows
   * checks the generation in Redis and asks for a refresh (`fresh`) if another node changed a subscription since.
   */
  matchNow (topic: string): Promise<{ subs: TopicSubscription[], generation: number }> {
    // a copy: the enqueue finds the generation a list was matched at by the list itself
    const result = this.#tail.then(() => ({ subs: [...this.#index.match(topic)], generation: this.#gen }))
    this.#tail = result.catch(() => undefined)
    return result
  }

  /**
   * Whether a persistent session's subscription matches a QoS 1/2 publish to `topic` (its QoS 0 ones too with
   * sessions.queueQos0): the local matcher first; when it finds no one, once more after reading the change log.
   */
  async hasAny (topic: string): Promise<boolean> {
    const any = (): boolean => this.#index.match(topic).length > 0 || this.#index.matchAtQos0(topic, 1).length > 0
    return any() || await this.fresh(any)
  }

  /**
   * sessions.queueQos0's targets: the sessions matched at QoS 0 that `isOnline` does not name, at the generation the
   * matcher has, with the check for the enqueue script (queue-scripts.ts): a subscription made on another node since
   * makes it match again, and a session whose client is connected to a live node is skipped (-3). A QoS 0 publish is
   * the only one aedes never enqueues, so without the check a node whose matcher lagged would never queue it for a
   * session that subscribed elsewhere.
   */
  offlineQos0 (topic: string, publishQos: number, isOnline: (clientId: string) => boolean): { subs: TopicSubscription[], check: MatchCheck } {
    const offline = (): TopicSubscription[] => this.#index.matchAtQos0(topic, publishQos).filter(sub => !isOnline(sub.clientId))
    const rematch = async (): Promise<{ subs: TopicSubscription[], generation: number }> => await this.fresh(() => ({ subs: offline(), generation: this.#gen }))
    return { subs: offline(), check: { generation: this.#gen, rematch, partial: true } }
  }

  fresh<T> (read: () => T): Promise<T> {
    const changes = this.#redis.xrange(this.#keys.subsLog, `(${this.#lastId}`, '+') as Promise<LogEntry[]>
    const result = this.#tail.then(async () => await changes).then(async (entries) => {
      if (entries.length > 0) await this.#apply(entries)
      return read()
    })
    this.#tail = result.catch(() => undefined)
    return result
  }

  async #apply (read: LogEntry[]): Promise<void> {
    // Reads sent before the previous refresh was applied return what it applied already (they run in call order
    // behind it): skipped, or every concurrent refresh would reload the same clients again, each behind the last.
    const entries = read.filter(([, fields]) => Number(field(fields, 'g')) > this.#gen)
    if (entries.length === 0) return
    const last = entries[entries.length - 1]
    const first = field(entries[0][1], 'g')
    if (Number(first) > this.#gen + 1) {
      await this.load()
      return
    }
    const changed = new Set<string>()
    for (const [, fields] of entries) {
      if (field(fields, 'n') !== this.#node) changed.add(field(fields, 'c'))
    }
    const ids = [...changed]
    const all = await Promise.all(ids.map(async id => await this.#redis.hgetall(this.#keys.subs(id))))
    ids.forEach((id, i) => {
      this.#index.clean(id)
      loadClient(this.#index, id, all[i])
    })
    this.#lastId = last[0]
    this.#gen = Number(field(last[1], 'g'))
  }

  async #write (clientId: string, puts: string[], dels: string[], undo: () => void): Promise<void> {
    if (puts.length === 0 && dels.length === 0) return
    const tx = this.#redis.multi()
    if (puts.length > 0) tx.hset(this.#keys.subs(clientId), ...puts)
    if (dels.length > 0) tx.hdel(this.#keys.subs(clientId), ...dels)
    this.#log(tx, clientId)
    try {
      this.#advance((await exec(tx)).at(-1) as [number, string])
    } catch (err) {
      undo()
      throw err
    }
  }

  /** A change of this node's own, already in the matcher: its log entry is the next one, unless another came between. */
  #advance ([gen, id]: [number, string]): void {
    if (gen !== this.#gen + 1) return
    this.#gen = gen
    this.#lastId = id
  }

  #log (tx: ReturnType<Redis['multi']>, clientId: string): void {
    logChange(tx, { gen: this.#keys.subsGen, log: this.#keys.subsLog }, clientId, this.#node, LOG_LENGTH)
  }
}

/** Deletes a client's subscriptions (KEYS[1]) and logs the change as logChange (change-log.ts) does (KEYS 2 and 3), if it had any. */
/** Deletes a client's subscriptions and logs the change. KEYS subs, subsGen, subsLog. ARGV clientId, node, log length. */
export const DROP_ALL = `
if redis.call('DEL', KEYS[1]) == 0 then return { 0, '' } end
local g = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'c', ARGV[1], 'n', ARGV[2], 'g', g)
return { g, id }
`

function loadClient (index: SubscriptionIndex, clientId: string, all: Record<string, string>): void {
  for (const [filter, json] of Object.entries(all)) index.load(clientId, filter, JSON.parse(json) as SubscriptionRecord)
}

/** Runs a transaction; a command that failed inside it fails the whole call. */
export async function exec (tx: ReturnType<Redis['multi']>): Promise<unknown[]> {
  const results = await tx.exec()
  if (results === null) throw new Error('redis transaction aborted')
  const out: unknown[] = []
  for (const [err, value] of results) {
    if (err !== null) throw err
    out.push(value)
  }
  return out
}
