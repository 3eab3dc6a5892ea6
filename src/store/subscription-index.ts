import QlobberSub from 'qlobber/aedes/qlobber-sub.js'
import type { SubscriptionInput, SubscriptionRecord, TopicSubscription } from './types.js'

export interface SubscriptionChange {
  puts: Map<string, SubscriptionRecord>
  dels: Set<string>
  undo: () => void
}

function isGrantedQos (qos: unknown): qos is 0 | 1 | 2 {
  return qos === 0 || qos === 1 || qos === 2
}

function newMatcher (): QlobberSub {
  // match_empty_levels: mqemitter matches `a/+` against `a/` ([MQTT-4.7.1-3]); the queue must match the same
  // topics as live delivery or aedes' outgoingUpdate finds no queued copy and drops the client.
  return new QlobberSub({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true })
}

/** Wildcard-first filters never match `$` topics [MQTT-4.7.2-1]. */
function withoutWildcardFirst (topic: string, subs: TopicSubscription[]): TopicSubscription[] {
  if (topic.charCodeAt(0) !== 36) return subs
  return subs.filter((sub) => {
    const first = sub.topic.charCodeAt(0)
    return first !== 43 && first !== 35
  })
}

/**
 * Topics whose matches are kept (see SubscriptionIndex#match); past that the kept ones are dropped and it starts
 * again, so a broker whose publishers use more topics than this pays a lookup and a store per publish, no more.
 */
const KEPT_MATCHES = 1024

export interface SubscriptionIndexOptions {
  /** sessions.queueQos0: QoS 0 subscriptions are matched too, in a matcher of their own (see matchAtQos0). */
  matchQos0?: boolean
}

function toRecord (sub: SubscriptionInput): SubscriptionRecord {
  const record: SubscriptionRecord = { qos: sub.qos }
  if (sub.rh !== undefined) record.rh = sub.rh
  if (sub.rap !== undefined) record.rap = sub.rap
  if (sub.nl !== undefined) record.nl = sub.nl
  if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier
  return record
}

/**
 * Every session's subscription records plus the topic matchers, all in memory (loaded at open). Only QoS>0
 * subscriptions go into the matcher aedes reads (subscriptionsByTopic): aedes queues a copy for every match, online
 * or not, and consumes it only through a QoS>0 delivery. QoS 0 subscriptions have a matcher of their own, only with
 * matchQos0. `$share/…` filters are kept as records (the broker restores them through its own dispatcher) but never
 * matched here, so aedes' enqueueOffline ignores them.
 */
export class SubscriptionIndex {
  readonly #trie = newMatcher()
  readonly #qos0: QlobberSub | undefined
  readonly #byClient = new Map<string, Map<string, SubscriptionRecord>>()
  /** The QoS>0 matches of recent topics, until the next subscription change. */
  readonly #matches = new Map<string, readonly TopicSubscription[]>()
  #count = 0

  constructor (opts: SubscriptionIndexOptions = {}) {
    this.#qos0 = opts.matchQos0 === true ? newMatcher() : undefined
  }

  get count (): number {
    return this.#count
  }

  clientIds (): IterableIterator<string> {
    return this.#byClient.keys()
  }

  load (clientId: string, filter: string, record: SubscriptionRecord): void {
    this.#set(clientId, filter, record)
  }

  /**
   * Applies `subs` in order (a later entry for the same filter wins). An entry whose qos is not 0, 1 or 2 is a
   * subscription the broker denied (SUBACK 128): it is never stored, and a record for that filter written by an
   * earlier call for the same SUBSCRIBE packet is removed (aedes stores the whole packet once per granted filter,
   * so with a synchronous authorizeSubscribe the denied filter is first stored before it is marked).
   */
  add (clientId: string, subs: SubscriptionInput[]): SubscriptionChange {
    const before = new Map<string, SubscriptionRecord | undefined>()
    const puts = new Map<string, SubscriptionRecord>()
    const dels = new Set<string>()
    for (const sub of subs) {
      const filter = sub.topic
      if (typeof filter !== 'string') continue
      if (!before.has(filter)) before.set(filter, this.#byClient.get(clientId)?.get(filter))
      if (isGrantedQos(sub.qos)) {
        const record = toRecord(sub)
        this.#set(clientId, filter, record, sub)
        puts.set(filter, record)
        dels.delete(filter)
      } else if (this.#byClient.get(clientId)?.has(filter) === true) {
        this.#set(clientId, filter, undefined)
        puts.delete(filter)
        dels.add(filter)
      } else if (before.get(filter) !== undefined) {
        dels.add(filter)
      }
    }
    return { puts, dels, undo: this.#undoer(clientId, before, puts) }
  }

  /** Removes the given filters; returns the ones that existed. */
  remove (clientId: string, filters: string[]): { removed: string[], undo: () => void } {
    const before = new Map<string, SubscriptionRecord | undefined>()
    const removed: string[] = []
    for (const filter of filters) {
      const record = this.#byClient.get(clientId)?.get(filter)
      if (record === undefined) continue
      before.set(filter, record)
      this.#set(clientId, filter, undefined)
      removed.push(filter)
    }
    return { removed, undo: this.#undoer(clientId, before, new Map()) }
  }

  clean (clientId: string): { removed: string[], undo: () => void } {
    return this.remove(clientId, [...(this.#byClient.get(clientId)?.keys() ?? [])])
  }

  /**
   * One entry per (client, matching filter), QlobberSub order; wildcard-first filters never match `$` topics. Read
   * only: the same array is handed out for a topic until a subscription changes. aedes asks for every QoS 1/2
   * publish, and the trie's walk (the topic split into levels, a new object per match) was about 3 % of the broker's
   * CPU and 4 % of what it allocated per message in fan-in to a persistent subscriber, where a few topics carry every
   * message.
   */
  match (topic: string): readonly TopicSubscription[] {
    let subs = this.#matches.get(topic)
    if (subs === undefined) {
      subs = Object.freeze(withoutWildcardFirst(topic, this.#trie.match(topic)))
      if (this.#matches.size >= KEPT_MATCHES) this.#matches.clear()
      this.#matches.set(topic, subs)
    }
    return subs
  }

  /**
   * The subscriptions through which a message of `publishQos` on `topic` goes out at QoS 0: every match of a QoS 0
   * publish; for QoS 1/2, the QoS 0 filters of clients that no QoS 1/2 filter matches (those get a QoS>0 copy).
   * Always empty without matchQos0.
   */
  matchAtQos0 (topic: string, publishQos: number): TopicSubscription[] {
    if (this.#qos0 === undefined) return []
    const qos0 = withoutWildcardFirst(topic, this.#qos0.match(topic))
    if (publishQos === 0) return [...this.match(topic), ...qos0]
    if (qos0.length === 0) return qos0
    const higher = new Set(this.match(topic).map((sub) => sub.clientId))
    return qos0.filter((sub) => !higher.has(sub.clientId))
  }

  byClient (clientId: string): Array<SubscriptionRecord & { topic: string }> {
    const subs: Array<SubscriptionRecord & { topic: string }> = []
    for (const [topic, record] of this.#byClient.get(clientId) ?? []) subs.push({ topic, ...record })
    return subs
  }

  has (clientId: string): boolean {
    return this.#byClient.has(clientId)
  }

  countFor (clientId: string): number {
    return this.#byClient.get(clientId)?.size ?? 0
  }

  /** Client ids holding exactly this filter, in the order the clients first subscribed. */
  clientsWith (filter: string): string[] {
    const ids: string[] = []
    for (const [clientId, subs] of this.#byClient) {
      if (subs.has(filter)) ids.push(clientId)
    }
    return ids
  }

  countOffline (): { subsCount: number, clientsCount: number } {
    return { subsCount: this.#trie.subscriptionsCount, clientsCount: this.#byClient.size }
  }

  #undoer (clientId: string, before: Map<string, SubscriptionRecord | undefined>, written: Map<string, SubscriptionRecord>): () => void {
    return () => {
      for (const [filter, record] of before) {
        const current = this.#byClient.get(clientId)?.get(filter)
        // a later call may have changed the filter again; only revert what this call left behind
        if (current !== written.get(filter)) continue
        this.#set(clientId, filter, record)
      }
    }
  }

  #set (clientId: string, filter: string, record: SubscriptionRecord | undefined, sub?: SubscriptionInput): void {
    if (this.#matches.size > 0) this.#matches.clear()
    let subs = this.#byClient.get(clientId)
    const prev = subs?.get(filter)
    const from = prev === undefined ? undefined : this.#matcherFor(filter, prev.qos)
    const to = record === undefined ? undefined : this.#matcherFor(filter, record.qos)
    if (from !== undefined && from !== to) from.remove(filter, { clientId, topic: filter })
    if (record === undefined) {
      if (subs !== undefined && prev !== undefined) {
        subs.delete(filter)
        this.#count--
        if (subs.size === 0) this.#byClient.delete(clientId)
      }
      return
    }
    if (to !== undefined) {
      to.add(filter, {
        clientId,
        topic: filter,
        qos: record.qos,
        rh: sub !== undefined ? sub.rh : record.rh,
        rap: sub !== undefined ? sub.rap : record.rap,
        nl: sub !== undefined ? sub.nl : record.nl
      })
    }
    if (subs === undefined) {
      subs = new Map()
      this.#byClient.set(clientId, subs)
    }
    if (prev === undefined) this.#count++
    subs.set(filter, record)
  }

  #matcherFor (filter: string, qos: number): QlobberSub | undefined {
    if (filter.startsWith('$share/')) return undefined
    if (qos === 1 || qos === 2) return this.#trie
    return qos === 0 ? this.#qos0 : undefined
  }
}
