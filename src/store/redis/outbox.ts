import type { Redis } from 'ioredis'
import type { QueuedCopies } from '../contract.js'
import { decodeRecord, encodeRecord } from '../codec.js'
import type { EnqueueTarget } from '../enqueue-targets.js'
import type { QueueTotals } from '../outgoing-index.js'
import { QueueLookups } from '../queue-lookups.js'
import type { ClientQueue } from '../outgoing-index.js'
import { outputPacket, replay } from '../outgoing-replay.js'
import { packetRecord, payloadBytes, pubrelRecord } from '../packets.js'
import type { ClientRef, PacketLike, SessionQueues } from '../types.js'
import type { CarriedRecord } from './state.js'
import { ADD_PUBREL, defineScript, DROP, PUBREL, UPDATE, type Script } from './scripts.js'
import { clearBatch } from './queue-batches.js'
import { Enqueues } from './enqueues.js'
import type { ScriptBatch } from './script-batch.js'
import { EvictedEntries } from './evicted.js'
import { EntryLearner } from './learn-entries.js'
import type { RedisDeps } from './write-order.js'
import { LazyIds } from './lazy-ids.js'
import { QueueMirrors } from './queue-mirrors.js'
import { redisReplayContext } from './replay-context.js'
import { QueueHolders, type Holder } from './queue-holders.js'
import { addEntry, counterKey, noSuchPacket, queueInfo, readQueue, readQueueUpTo, removeSeq, type MatchCheck } from './queue-entries.js'

export type { MatchCheck } from './queue-entries.js'

/**
 * The session queues on Redis (layout in keys.ts, scripts in scripts.ts): Redis holds each queue and its lookups,
 * every change is one script, so any node can enqueue, update or acknowledge. The node that replays a session's
 * queue (its client is connected there) keeps a mirror of it, a ClientQueue like the LevelDB store's index, for
 * the questions the broker asks synchronously on every delivery (is this copy still unsent, does an entry hold
 * this packet id); the mirror is rebuilt from Redis at each replay and follows this node's own changes.
 */
export class RedisOutbox extends QueueLookups implements SessionQueues {
  readonly #deps: RedisDeps
  readonly #totals: QueueTotals = { entries: 0, bytes: 0 }
  readonly #enqueues: Enqueues
  readonly #clears: ScriptBatch<[number, Buffer] | undefined>
  readonly #update: Script
  readonly #pubrel: Script
  readonly #addPubrel: Script
  readonly #drop: Script
  readonly #learner: EntryLearner
  readonly #evicted: EvictedEntries
  readonly #lazy = new LazyIds()
  readonly #mirrors: QueueMirrors
  readonly #holders: QueueHolders

  constructor (deps: RedisDeps) {
    super()
    this.#deps = deps
    this.#mirrors = new QueueMirrors(this.queues, this.#totals)
    this.#holders = new QueueHolders(deps.redis)
    this.#clears = clearBatch(deps)
    this.#update = defineScript(deps.redis, 'culexUpdate', UPDATE)
    this.#pubrel = defineScript(deps.redis, 'culexPubrel', PUBREL)
    this.#addPubrel = defineScript(deps.redis, 'culexAddPubrel', ADD_PUBREL)
    this.#drop = defineScript(deps.redis, 'culexDrop', DROP)
    this.#learner = new EntryLearner(deps, this.#mirrors, id => this.isHere(id))
    this.#evicted = new EvictedEntries(deps, (clientId, seq) => { this.#mirrors.change(clientId, false, removeSeq(seq)) })
    this.#enqueues = new Enqueues({ deps, queues: this.queues, mirrors: this.#mirrors, lazy: this.#lazy, evicted: this.#evicted, isHere: id => this.isHere(id), alivePrefix: () => this.#holders.alivePrefix })
  }

  /** At open: puts back into their queues the evicted entries a crash left without their dead letters. */
  async restoreEvicted (): Promise<void> {
    await this.#evicted.restore()
  }

  /**
   * Cluster mode: whether a session's client is connected to this node; only those sessions learn entries other
   * nodes wrote (learn).
   */
  isHere: (clientId: string) => boolean = () => true

  /**
   * Cluster mode: other nodes queued these messages and sent them here live; the sessions connected here learn
   * their entries (learn-entries.ts): those the message carries (`queued`) at once, else those of `clientIds` from
   * Redis, in one round trip for the lot.
   */
  async learn (messages: Array<{ packet: PacketLike, clientIds?: string[], queued?: QueuedCopies }>): Promise<void> {
    const unknown: Array<{ packet: PacketLike, clientIds: string[] }> = []
    for (const { packet, clientIds, queued } of messages) {
      if (queued !== undefined) this.#learner.carried(packet, queued)
      else if (clientIds !== undefined) unknown.push({ packet, clientIds })
    }
    if (unknown.length > 0) await this.#learner.lookUp(unknown)
  }

  /** Cluster mode: this node, which claims the sessions connected to it (queue-holders.ts). */
  set holder (holder: Holder) {
    this.#holders.holder = holder
  }

  /** The live nodes holding a session the message was queued for, as Redis had them (queue-holders.ts). */
  holdersOf (packet: object): readonly string[] | undefined {
    return this.#enqueues.holders(packet)
  }

  /**
   * The connection ended: its claim on the session goes, unless a newer connection's replaced it, and so does the
   * mirror when no connection of the session is here. Kept, it followed this node's enqueues for the session and
   * nothing here acknowledged them once its client was back on another node: this node's queued count and memory grew
   * with every message for it. A connection here again rebuilds it from Redis at its replay.
   */
  release (client: ClientRef): void {
    this.#holders.release(this.#deps.keys.queueIndex(client.id), this.token(client))?.catch((err: unknown) => { this.#deps.logger.warn({ err, clientId: client.id }, 'session holder not released') })
    if (!this.isHere(client.id)) this.#dropMirror(client.id)
  }

  #dropMirror (clientId: string): void {
    const mirror = this.queues.get(clientId)
    if (mirror !== undefined) for (const entry of mirror.snapshot()) mirror.remove(entry)
    this.queues.delete(clientId)
    this.#mirrors.forget(clientId)
  }

  /**
   * Cluster mode: the session's mirror read again from Redis, with its claim made again (this node was taken for dead
   * meanwhile: what other nodes queued for it did not reach it). The unsent entries are then the replay's.
   */
  async catchUp (client: ClientRef): Promise<void> {
    this.#lazy.flush(client.id)
    await this.#reload(client)
  }

  /** The entries this node's enqueue of the message made, if all are known (enqueues.ts). */
  queuedCopies (packet: object): QueuedCopies | undefined {
    return this.#enqueues.copies(packet)
  }

  /**
   * Resolves once Redis has the message in each queue, in call order (enqueues.ts); the enqueues of one turn of the
   * event loop go in one script call.
   */
  enqueue (targets: readonly EnqueueTarget[], packet: PacketLike, check?: MatchCheck, record?: CarriedRecord): Promise<void> {
    return this.#enqueues.enqueue(targets, packet, check, record)
  }

  /** aedes' outgoingUpdate: records the packet id a publish was sent with, or turns it into its PUBREL. */
  update (client: ClientRef, packet: PacketLike): Promise<void> {
    const messageId = packet.messageId
    if (messageId == null) return Promise.reject(noSuchPacket())
    const mirror = this.queues.get(client.id)
    const token = this.token(client)
    const keys = this.#deps.keys.queueScriptKeys(client.id)
    if (packet.cmd === 'pubrel') {
      const record = pubrelRecord(messageId)
      const entry = mirror?.byMessageId(messageId)
      if (entry !== undefined) {
        this.#lazy.release(client.id, entry.seq)
        this.#mirrors.change(client.id, false, (q) => {
          const e = q.get(entry.seq)
          if (e === undefined) return
          e.cmd = 'pubrel'
          q.setBytes(e, 0)
          e.sentOn = token
          e.inflight = record
        })
      }
      // A QoS 2 copy the session queue never held (a retained message sent on SUBSCRIBE) has no entry: its PUBREL
      // goes out all the same [MQTT-4.3.3-1], with nothing to record (as in the LevelDB store)
      this.#writeNow()
      return this.#deps.order.track(this.#pubrel(keys, [messageId, encodeRecord(record, { t: entry?.enqueuedAt ?? Date.now() })]).then(() => undefined))
    }
    const entry = mirror?.byCounter(String(packet.brokerId), Number(packet.brokerCounter))
    if (entry?.cmd === 'pubrel') return this.#deps.order.after()
    const qos = Math.min(entry?.qos ?? packet.qos ?? 1, packet.qos ?? 2)
    const record = packetRecord(packet, { qos, messageId })
    if (entry !== undefined) {
      const bytes = payloadBytes(record.payload)
      this.#mirrors.change(client.id, false, (q) => {
        const e = q.get(entry.seq)
        if (e === undefined) return
        if (e.qos === 0) {
          q.remove(e)
          return
        }
        e.qos = qos
        q.assignMessageId(e, messageId)
        q.setBytes(e, bytes)
        e.sentOn = token
        e.inflight = record
      })
    }
    const args = [counterKey(packet.brokerId, packet.brokerCounter), messageId, qos, encodeRecord(record, { t: entry?.enqueuedAt ?? Date.now() })]
    const send = (): Promise<void> => {
      this.#writeNow()
      return this.#deps.order.track(this.#update(keys, args).then((seq) => { if (seq === null) throw noSuchPacket() }))
    }
    // A QoS 1 id the mirror knows is held back (lazy-ids.ts); QoS 2 ids are written before the PUBLISH leaves.
    if (qos === 1 && entry !== undefined) {
      this.#lazy.hold(client.id, entry.seq, entry.bytes, () => {
        send().catch((err: unknown) => { this.#deps.logger.warn({ err, clientId: client.id }, 'queued message id not recorded') })
      })
      return Promise.resolve()
    }
    return send()
  }

  addPubrel (client: ClientRef, messageId: number): Promise<void> {
    const now = Date.now()
    const record = pubrelRecord(messageId)
    this.#writeNow()
    return this.#deps.order.track(this.#addPubrel(this.#deps.keys.queueScriptKeys(client.id), [messageId, encodeRecord(record, { t: now }), now]).then((seq) => {
      if (seq === 0) return
      this.#mirrors.change(client.id, true, addEntry({
        seq: seq as number, enc: '', key: String(seq), cmd: 'pubrel', brokerId: undefined, brokerCounter: undefined, messageId, qos: 2, bytes: 0, enqueuedAt: now, sentOn: this.token(client), inflight: record
      }))
    }))
  }

  /** PUBACK / PUBCOMP (or a copy that will never be sent): removes the entry, returns the packet. */
  clear (client: ClientRef, packet: unknown): Promise<Record<string, unknown> | undefined> {
    const p = typeof packet === 'object' && packet !== null ? packet as PacketLike : undefined
    if (p === undefined) return Promise.resolve(undefined)
    const unsent = p.messageId == null
    const mirror = this.queues.get(client.id)
    const entry = unsent ? mirror?.byCounter(String(p.brokerId), Number(p.brokerCounter)) : mirror?.byMessageId(p.messageId as number)
    if (entry !== undefined && !(unsent && entry.messageId !== undefined)) this.#mirrors.change(client.id, false, removeSeq(entry.seq))
    // an id never written: Redis still has the entry without one, found by its broker counter
    const byCounter = unsent || (entry !== undefined && this.#lazy.take(client.id, entry.seq))
    const counter = entry === undefined ? counterKey(p.brokerId, p.brokerCounter) : counterKey(entry.brokerId, entry.brokerCounter)
    // Answered from the mirror without waiting when it has the packet as sent: a crash before Redis deleted the
    // entry resends the message or PUBREL, which QoS 1 and 2 allow. Redis then need not send the packet back.
    const sent = unsent ? undefined : entry?.inflight
    const [q, qm, qx] = this.#deps.keys.queueScriptKeys(client.id)
    const write = this.#clears.add({ keys: [q, qm, qx], args: [unsent ? '' : Number(p.messageId), byCounter ? counter : '', sent !== undefined || unsent ? '' : '1'] })
    if (sent !== undefined) {
      write.catch((err: unknown) => { this.#deps.logger.warn({ err, clientId: client.id }, 'acknowledged message not deleted') })
      return Promise.resolve(outputPacket(sent, false))
    }
    return write.then((found) => {
      if (found === undefined || unsent) return undefined
      return outputPacket(decodeRecord(found[1]).fields, false)
    })
  }

  /** The queue as Redis has it now, replayed in chunks; the mirror is rebuilt from it first. */
  batches (client: ClientRef, unsentOnly = false): AsyncGenerator<Array<Record<string, unknown>>> {
    const self = this
    return (async function * () {
      if (!unsentOnly) self.#lazy.flush(client.id)
      const queue = unsentOnly ? self.queues.get(client.id) : await self.#reload(client)
      const entries = queue === undefined ? [] : queue.snapshot()
      const snapshot = unsentOnly ? entries.filter(entry => entry.messageId === undefined) : entries
      const context = redisReplayContext(self.#deps, client.id, { queues: self.queues, drop: self.#drop, writeNow: () => { self.#writeNow() } })
      yield * replay(context, client.id, snapshot, self.token(client))
    })()
  }

  /** Writes the packet ids held back and what the batches gathered (before a barrier or close). */
  flush (): void {
    this.#lazy.flush()
    this.#writeNow()
  }

  /** Sends what the batches gathered: a write or read of the same queues outside them must not overtake them. */
  #writeNow (): void {
    this.#clears.flush()
    this.#enqueues.batch.flush()
  }

  /**
   * A session's queue is deleted (END_SESSION, with these keys: q, qm, qx, queue totals, qe): what this node gathered
   * for it goes to Redis first, its mirror goes.
   */
  purge (clientId: string): string[] {
    this.#lazy.drop(clientId)
    this.#writeNow()
    this.#dropMirror(clientId)
    return [...this.#deps.keys.queueScriptKeys(clientId), this.#deps.keys.queueEvicted(clientId)]
  }

  /** What this node's mirrors hold (the queues it replayed or wrote to). */
  totals (): { messages: number, bytes: number } {
    return { messages: this.#totals.entries, bytes: this.#totals.bytes }
  }

  /** A session's queue as Redis has it: sizes, in-flight count and oldest entry. */
  async info (clientId: string): Promise<{ queued: number, inflight: number, queuedBytes: number, oldestQueuedAt?: number } | undefined> {
    this.#lazy.flush(clientId)
    return queueInfo(await this.#read(clientId, readQueue))
  }

  /**
   * The session's mirror rebuilt from Redis. A session connected here is claimed first (queue-holders.ts): what is
   * queued after the claim is sent here live, what was queued before it is in the read.
   */
  async #reload (client: ClientRef): Promise<ClientQueue | undefined> {
    // an aedes client of a persistent session (a plain { id } reads the queue for a tool)
    const generation = client.clean === false ? await this.#holders.generationOf(client) : undefined
    return await this.#mirrors.reload(client.id, async () => await this.#read(client.id, async (redis, q, qx) => {
      const claim = generation === undefined ? undefined : this.#holders.claim(qx, this.token(client), generation)
      claim?.catch((err: unknown) => { this.#deps.logger.warn({ err, clientId: client.id }, 'session holder not claimed') })
      return await readQueueUpTo(redis, q, qx)
    }))
  }

  async #read<T> (clientId: string, read: (redis: Redis, q: string, qx: string) => Promise<T>): Promise<T> {
    this.#writeNow()
    const [q, , qx] = this.#deps.keys.queueScriptKeys(clientId)
    return await read(this.#deps.redis, q, qx)
  }
}

