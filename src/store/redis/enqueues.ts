import { encodeQueuedCopy } from '../codec.js'
import { targetsByClient, type EnqueueTarget } from '../enqueue-targets.js'
import type { QueuedCopies } from '../contract.js'
import type { ClientQueue, QueueTotals } from '../outgoing-index.js'
import { droppedPacket, payloadBytes, payloadOf } from '../packets.js'
import type { PacketLike } from '../types.js'
import { CONNECTED_ELSEWHERE, REFUSED, type EvictedEntries } from './evicted.js'
import type { LazyIds } from './lazy-ids.js'
import { enqueueBatch, STALE } from './queue-batches.js'
import { addEntry, counterKey, MAX_REMATCHES, type MatchCheck } from './queue-entries.js'
import type { QueueMirrors } from './queue-mirrors.js'
import type { CarriedRecord } from './state.js'
import type { RedisDeps } from './write-order.js'

/** What the enqueues share with the rest of the outbox (outbox.ts). */
export interface EnqueueParts {
  deps: RedisDeps
  queues: Map<string, ClientQueue>
  mirrors: QueueMirrors
  lazy: LazyIds
  evicted: EvictedEntries
  /** Whether a session's client is connected to this node (cluster mode). */
  isHere: (clientId: string) => boolean
  /** Cluster mode: the prefix of the node liveness keys, for the holders of the sessions a message is queued for. */
  alivePrefix: () => string
}

/**
 * Messages into session queues: one ENQUEUE_BATCH call (queue-scripts.ts) per turn of the event loop for every
 * message and client of the turn; each enqueue resolves once Redis has its message in each queue, in call order.
 * The limits are applied in the script, the broker-wide ones over every queue in Redis (the whole cluster's); what
 * they drop is reported.
 */
export class Enqueues {
  readonly #p: EnqueueParts
  readonly batch: ReturnType<typeof enqueueBatch>
  /** Every queue in Redis together, as the last enqueue script returned it. */
  #cluster: QueueTotals = { entries: 0, bytes: 0 }
  /** Per message: the entries its enqueue made, or null when they are not all known (see `copies`). */
  readonly #copies = new WeakMap<object, QueuedCopies | null>()
  /** Per message: the live nodes holding a session it was queued for (see `holders`). */
  readonly #holders = new WeakMap<object, string[]>()

  constructor (parts: EnqueueParts) {
    this.#p = parts
    this.batch = enqueueBatch(parts.deps, parts.alivePrefix)
  }

  /** `record`: the publisher's inbound QoS 2 record, written in the same script as the entries (state.ts' carry). */
  enqueue (targets: readonly EnqueueTarget[], packet: PacketLike, check?: MatchCheck, record?: CarriedRecord): Promise<void> {
    const { limits, order } = this.#p.deps
    if ((packet.qos ?? 0) === 0 && !limits.queueQos0) return order.after()
    // targets not matched at a generation Redis checks may be a part only: that message's entries are not all known here
    if (check === undefined) this.#copies.set(packet, null)
    return order.hold(this.#send(targets, packet, check, 0, record))
  }

  /**
   * The entries the enqueue of this message made, all of them: its clients were matched at the generation Redis had
   * (every persistent session the message is for), and each entry's seq is known. Undefined otherwise.
   */
  copies (packet: object): QueuedCopies | undefined {
    return this.#copies.get(packet) ?? undefined
  }

  /**
   * Cluster mode: the nodes whose replay claimed a session this message was queued for (their client is connected
   * there), as Redis had them when it queued it; undefined when none.
   */
  holders (packet: object): readonly string[] | undefined {
    return this.#holders.get(packet)
  }

  async #send (targets: readonly EnqueueTarget[], packet: PacketLike, check: MatchCheck | undefined, attempt: number, record: CarriedRecord | undefined): Promise<void> {
    const { limits, order, keys: k, drops } = this.#p.deps
    const packetQos = packet.qos ?? 0
    const now = Date.now()
    const bytes = payloadBytes(payloadOf(packet))
    const bk = counterKey(packet.brokerId, packet.brokerCounter)
    // a node that keeps seeing changes stops checking rather than retrying for ever (an extremely busy cluster)
    const generation = check === undefined || attempt >= MAX_REMATCHES ? '' : check.generation
    const keys: string[] = record === undefined ? [] : [record.key]
    const args: Array<string | Buffer | number> = [bk, now, generation, 0, record?.field ?? '', record?.value ?? '', record?.appends.length ?? 0, check?.partial === true ? '1' : '']
    for (const append of record?.appends ?? []) {
      keys.push(append.key)
      args.push(append.maxLen, append.fields[0], append.fields[1])
    }
    const clients: Array<[string, number]> = []
    const encoded: Array<Buffer | undefined> = []
    for (const { clientId, cap, rap } of targetsByClient(targets)) {
      const qos = Math.min(packetQos, cap)
      if (qos === 0 && !limits.queueQos0) continue
      this.#unholdNearLimit(clientId, bytes)
      const retain = rap && packet.retain === true
      const variant = qos * 2 + (retain ? 1 : 0)
      encoded[variant] ??= encodeQueuedCopy(packet, qos, retain, now)
      keys.push(k.queue(clientId), k.queueMessages(clientId), k.queueIndex(clientId), k.queueEvicted(clientId))
      args.push(qos, bytes, encoded[variant] as Buffer)
      clients.push([clientId, qos])
    }
    if (clients.length === 0 && generation === '' && record === undefined) return await order.after()
    args[3] = clients.length
    const done = await this.batch.add({ keys, args })
    if (done === STALE) {
      // stale, or after a stale one in the same call: sent again, matched again if it was matched
      if (check === undefined) return await this.#send(targets, packet, check, attempt + 1, record)
      const again = await check.rematch()
      return await this.#send(again.subs, packet, { ...check, generation: again.generation }, attempt + 1, record)
    }
    record?.written()
    const { seqs, evicted, totals, holders } = done
    if (totals.length === 2) this.#cluster = { entries: totals[0], bytes: totals[1] }
    if (holders.length > 0) this.#holders.set(packet, [...this.#holders.get(packet) ?? [], ...holders])
    this.#p.evicted.report(clients.map(([clientId]) => clientId), evicted)
    // sessions.queueQos0's QoS 0 copies are queued only for sessions no live node holds, which no node learns as
    // entries of a message it delivers live: the entries of aedes' enqueue of the message stay its known copies
    if (check?.partial !== true) this.#noteCopies(packet, generation !== '' && !seqs.includes(0) ? { at: now, copies: seqs.flatMap((seq, i) => seq > 0 ? [[clients[i][0], seq, clients[i][1]]] : []) } : null)
    seqs.forEach((seq, i) => {
      const [clientId, qos] = clients[i]
      if (seq < 0 && seq !== CONNECTED_ELSEWHERE) drops.report({ reason: REFUSED[seq], clientId, packet: droppedPacket({ ...packet, qos }) })
      if (seq <= 0) return
      // A session connected to another node gets no mirror here: nothing here would ever acknowledge its entries, so
      // it would grow with every message (memory, and this node's queued count); its own node learns them. A replay
      // under way here still records the change (QueueMirrors.change).
      this.#p.mirrors.change(clientId, this.#p.isHere(clientId), addEntry({ seq, enc: '', key: String(seq), cmd: 'publish', brokerId: packet.brokerId ?? undefined, brokerCounter: packet.brokerCounter, qos, bytes, enqueuedAt: now }))
    })
  }

  #noteCopies (packet: object, copies: QueuedCopies | null): void {
    if (this.#copies.get(packet) !== null) this.#copies.set(packet, copies)
  }

  /**
   * Redis applies the queue limits to what it counts as waiting, which includes messages in flight whose ids are
   * held back: when that could make the enqueue evict or refuse, the ids are written first (ahead of it).
   */
  #unholdNearLimit (clientId: string, bytes: number): void {
    const held = this.#p.lazy.held(clientId)
    if (held === undefined) return
    const { maxQueuedMessages: maxN, maxQueuedBytes: maxB, maxTotalQueuedMessages: maxTN, maxTotalQueuedBytes: maxTB } = this.#p.deps.limits
    const mirror = this.#p.queues.get(clientId)
    const waiting = (mirror?.waiting ?? 0) + held.entries
    const waitingBytes = (mirror?.waitingBytes ?? 0) + held.bytes
    // the broker-wide totals as the last enqueue of this node saw them (other nodes add to them meanwhile)
    const total = this.#cluster
    if ((maxN > 0 && waiting + 1 > maxN) || (maxB > 0 && waitingBytes + bytes > maxB) ||
      (maxTN > 0 && total.entries + 1 > maxTN) || (maxTB > 0 && total.bytes + bytes > maxTB)) this.#p.lazy.flush(clientId)
  }
}
