/**
 * The Redis key layout of cluster mode (docs/store.md, "Redis"). Every node of a cluster uses the same prefix on
 * the same Redis; a client id or topic is used as is inside a key (Redis keys are binary-safe).
 */
export class RedisKeys {
  readonly prefix: string

  constructor (prefix: string) {
    this.prefix = prefix
  }

  /** HASH filter → JSON subscription record. */
  subs (clientId: string): string { return `${this.prefix}subs:${clientId}` }
  /** STREAM of subscription changes `{ c: clientId, n: node, g: generation }`: how nodes keep their matcher fresh. */
  get subsLog (): string { return `${this.prefix}subs-log` }
  /** STRING, the generation of the last subscription change (INCR with every entry of subsLog). */
  get subsGen (): string { return `${this.prefix}subs-gen` }
  /** ZSET of a session's queue: member and score = seq (FIFO order). */
  queue (clientId: string): string { return `${this.prefix}q:${clientId}` }
  /** HASH seq → encoded packet (codec.ts), with meta `{ t: enqueuedAt }`. */
  queueMessages (clientId: string): string { return `${this.prefix}qm:${clientId}` }
  /** HASH of the queue's lookups: `n` next seq, `e:<seq>` entry state, `c:<brokerId>:<counter>` and `m:<messageId>` → seq. */
  queueIndex (clientId: string): string { return `${this.prefix}qx:${clientId}` }
  /**
   * HASH seq → '1': entries dropOldest evicted whose dead letter is not written yet. Out of the queue's ZSET and
   * counts, still in its hashes; a start puts back what a crash left here (outbox.ts, restoreEvicted).
   */
  queueEvicted (clientId: string): string { return `${this.prefix}qe:${clientId}` }
  /** HASH `n` entries and `b` payload bytes of every session queue together (the broker-wide bounds; not the evicted ones). */
  get queueTotals (): string { return `${this.prefix}queue-totals` }
  /** KEYS of the queue scripts (outbox.ts): the session's q, qm, qx and the queue totals. */
  queueScriptKeys (clientId: string): string[] { return [this.queue(clientId), this.queueMessages(clientId), this.queueIndex(clientId), this.queueTotals] }
  /** HASH messageId → encoded inbound QoS 2 packet awaiting PUBREL. */
  incoming (clientId: string): string { return `${this.prefix}in:${clientId}` }
  /** HASH clientId → JSON session record (session-records.ts). */
  get sessions (): string { return `${this.prefix}sessions` }
  /** HASH topic → encoded retained packet. */
  get retained (): string { return `${this.prefix}retained` }
  /** HASH clientId → encoded will; willOwners: clientId → broker id that stored it. */
  get wills (): string { return `${this.prefix}wills` }
  get willOwners (): string { return `${this.prefix}will-owners` }
  /**
   * HASH "<brokerId> <clientId>" → encoded will: the will of a connection on another node's run that a newer
   * connection of the client replaced (a client of a killed node back elsewhere before the node is taken for dead).
   * Published when that run is found dead, deleted when that run closes the connection (state.ts, delWill).
   */
  get willsAside (): string { return `${this.prefix}wills-aside` }
  /** STRING: starts of a broker id, so its message counters never repeat across restarts or nodes. */
  epoch (brokerId: string): string { return `${this.prefix}epoch:${brokerId}` }
  /** HASH key → encoded shared-group message; groupSeq: STRING, the seq of the next key. */
  get groups (): string { return `${this.prefix}groups` }
  get groupSeq (): string { return `${this.prefix}group-seq` }
  /** HASH id → encoded dead letter (deadOrder, a ZSET of ids, is not used); deadSeq: opens of the store, each the residue of its dead-letter ids (redis-parts.ts). */
  get deadOrder (): string { return `${this.prefix}dlq` }
  get deadLetters (): string { return `${this.prefix}dlq-records` }
  get deadSeq (): string { return `${this.prefix}dlq-seq` }
  /** STREAM of dead-letter changes `{ c: the fields changed, n: node, g: generation }` and their generation (kv.ts): how each node's index follows the others'. */
  get deadLog (): string { return `${this.prefix}dlq-log` }
  get deadGen (): string { return `${this.prefix}dlq-gen` }
  /** STRING, incremented before a WAIT on a new connection (replica-wait.ts): the WAIT then covers the lost one's writes. */
  get replicaMark (): string { return `${this.prefix}replica-mark` }
  /** STRING `{ formatVersion }`: the layout version this data was written with. */
  get format (): string { return `${this.prefix}format` }

  /** The glob that SCAN uses to find every key of one kind of per-client key, and how to read the client id back. */
  perClient (kind: 'subs' | 'q' | 'qx' | 'qe' | 'in'): { match: string, clientId: (key: string) => string } {
    const head = `${this.prefix}${kind}:`
    return { match: `${escapeGlob(head)}*`, clientId: key => key.slice(head.length) }
  }
}

/** A literal for a Redis MATCH glob. */
export function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\]/g, ch => `\\${ch}`)
}
