import type { StoredGroupMessage } from '../store/group-queue.js'
import { Dispatcher } from './dispatcher.js'
import { Group } from './group.js'
import type { JoinInput, Member } from './membership.js'
import { shareTopic, type ShareName } from './share-name.js'
import type { EngineOptions, EnginePort, EngineTotals, GroupStore, IncomingMessage } from './types.js'

/** What GET /api/shared and the metrics show of one group. */
export interface GroupView {
  share: string
  group: string
  filter: string
  strategy: string
  durable: boolean
  /** Cluster mode: the node that owns the group (runs this engine for it). */
  owner?: string
  /** `node`, in cluster mode: the node a connected member is connected to. */
  members: Array<{ clientId: string, online: boolean, persistent: boolean, qos: number, inflight: number, node?: string }>
  queued: number
  queuedBytes: number
  inflight: number
  /** Messages waiting out their retry backoff. */
  delayed: number
  /** Age of the oldest message not acknowledged yet (waiting, delayed or in flight), in ms; 0 when there is none. */
  oldestUnackedMs: number
  delivered: number
  redelivered: number
  acknowledged: number
  deadLettered: number
  dropped: number
  ackTimeouts: number
  rejections: number
}

/**
 * The shared subscriptions of one broker: which groups exist, who is a member and whether it can be sent messages.
 * The messages themselves are the Dispatcher's. Knows nothing of aedes; `H` is a connection.
 */
export class SharedEngine<H> {
  readonly #groups = new Map<string, Group<H>>()
  /** The groups each connection is a member of, so connect and close events touch only those. */
  readonly #groupsOf = new Map<H, Set<Group<H>>>()
  readonly #dispatcher: Dispatcher<H>

  constructor (private readonly port: EnginePort<H>, store: GroupStore | undefined, private readonly opts: EngineOptions) {
    this.#dispatcher = new Dispatcher(port, store, opts)
  }

  get totals (): EngineTotals {
    return this.#dispatcher.totals
  }

  groups (): IterableIterator<Group<H>> {
    return this.#groups.values()
  }

  group (key: string): Group<H> | undefined {
    return this.#groups.get(key)
  }

  /** Unacknowledged deliveries on one connection, timed-out ones included (what the in-flight cap counts). */
  inflightOf (handle: H | undefined): number {
    return this.#dispatcher.deliveries.heldOn(handle)
  }

  // membership ----------------------------------------------------------------------------------------------------

  /** A subscribe, a QoS change, a session restore, or a takeover by a new connection with the same client id. */
  join (share: ShareName, clientId: string, input: JoinInput<H>): Member<H> {
    const group = this.#groupFor(share)
    const member = group.members.join(clientId, input)
    let set = this.#groupsOf.get(input.handle)
    if (set === undefined) this.#groupsOf.set(input.handle, set = new Set())
    set.add(group)
    if (member.ready) this.#dispatcher.pump(group)
    return member
  }

  /** A persistent member found in the store at start. */
  restoreMember (share: ShareName, clientId: string, qos: number): void {
    const group = this.#groupFor(share)
    if (group.members.get(clientId) === undefined) group.members.restore(clientId, qos)
  }

  /**
   * A group with no member yet (cluster mode: a node taking a group over, before the other nodes' members join
   * it); it goes again by releaseIfEmpty if none ever does.
   */
  ensure (share: ShareName): void {
    this.#groupFor(share)
  }

  /** Removes the group if it has no member (its waiting messages are dead-lettered as no-members, as ever). */
  releaseIfEmpty (key: string): void {
    const group = this.#groups.get(key)
    if (group !== undefined) this.#removeIfEmpty(group)
  }

  /**
   * Cluster mode: another node took the group over (this node had been cut off): it is forgotten here without
   * dead-lettering anything, as what waits and what is in flight is in the store for the new owner.
   */
  forget (key: string): void {
    const group = this.#groups.get(key)
    if (group === undefined) return
    group.removed = true
    this.#groups.delete(key)
    for (const set of this.#groupsOf.values()) set.delete(group)
    this.#dispatcher.deliveries.forgetGroup(group)
  }

  /** Messages found in the store at start; false (nothing restored) when no member of that group exists. */
  restoreQueue (key: string, stored: StoredGroupMessage[]): boolean {
    const group = this.#groups.get(key)
    if (group === undefined) return false
    this.#dispatcher.redelivery.restore(group, stored)
    return true
  }

  /** The connection finished connecting: its members may now be sent messages. */
  ready (handle: H): void {
    for (const group of this.#groupsOf.get(handle) ?? []) {
      if (group.members.ready(handle)) this.#dispatcher.pump(group)
    }
  }

  /** The subscription identified by `token` was removed (UNSUBSCRIBE). */
  unsubscribed (key: string, token: unknown): void {
    const group = this.#groups.get(key)
    const member = group?.members.byToken(token)
    if (group === undefined || member === undefined) return
    group.members.leave(member.clientId)
    this.#removeIfEmpty(group)
  }

  /** The subscription's connection is closing: a persistent member goes offline, a clean one leaves. */
  disconnected (key: string, token: unknown): void {
    const group = this.#groups.get(key)
    const member = group?.members.byToken(token)
    if (group === undefined || member === undefined) return
    if (group.members.disconnected(member)) this.#removeIfEmpty(group)
  }

  /** The connection closed: what it had not acknowledged goes to another member at once. */
  gone (handle: H, clientId: string): void {
    this.#groupsOf.delete(handle)
    this.#dispatcher.redelivery.gone(handle, clientId)
  }

  /**
   * A persistent session ended (expiry, purge, or a clean CONNECT with its id): its offline memberships go, and an
   * online one leaves when its connection closes.
   */
  sessionEnded (clientId: string): void {
    for (const group of [...this.#groups.values()]) {
      if (group.members.sessionEnded(clientId) === true) this.#removeIfEmpty(group)
    }
  }

  // messages ------------------------------------------------------------------------------------------------------

  publish (group: Group<H>, message: IncomingMessage, done: (err?: Error) => void): void {
    this.#dispatcher.publish(group, message, done)
  }

  ack (handle: H, messageId: number): boolean {
    return this.#dispatcher.ack(handle, messageId)
  }

  /**
   * A member refused a delivery (MQTT 5 reason code ≥ 0x80, or too large for it): offered to another member after
   * the backoff, like an ack timeout, and counted against maxDeliveries; `why` goes into its dead letter. With
   * `redispatch` false it is dead-lettered as `rejected` at once.
   */
  reject (handle: H, messageId: number, why?: string, redispatch = true): boolean {
    return this.#dispatcher.redelivery.reject(handle, messageId, why, redispatch)
  }

  /** The connection may take QoS 1/2 messages again (room in its Receive Maximum): its groups dispatch. */
  capacity (handle: H): void {
    for (const group of this.#groupsOf.get(handle) ?? []) this.#dispatcher.pump(group)
  }

  sweep (): void {
    this.#dispatcher.redelivery.sweep()
  }

  /** A delayed retry fell due (EnginePort.wake). */
  release (): void {
    this.#dispatcher.redelivery.release()
  }

  close (): void {
    this.#dispatcher.close()
  }

  /** Closed: it takes no message any more (the broker is stopping). */
  get closed (): boolean {
    return this.#dispatcher.closed
  }

  /** `nodeOf`: the node of a connected member's connection (cluster mode). */
  view (nodeOf?: (handle: H) => string): GroupView[] {
    const now = (this.opts.now ?? Date.now)()
    const oldest = this.#dispatcher.deliveries.oldestByGroup()
    return [...this.#groups.values()].map(g => ({
      share: shareTopic(g.share.key),
      group: g.share.group,
      filter: g.share.filter,
      strategy: g.picker.strategy,
      durable: g.members.durable,
      members: [...g.members.all()].map(m => ({
        clientId: m.clientId,
        online: m.ready && m.handle !== undefined,
        persistent: m.persistent,
        qos: m.qos,
        inflight: this.inflightOf(m.handle),
        ...(nodeOf === undefined || m.handle === undefined ? {} : { node: nodeOf(m.handle) })
      })),
      queued: g.waiting,
      queuedBytes: g.waitingBytes,
      inflight: g.inflight,
      delayed: g.delayed.size,
      oldestUnackedMs: ageMs(now, Math.min(oldest.get(g) ?? Infinity, g.oldestWaitingAt())),
      ...g.counts
    })).sort((a, b) => a.share < b.share ? -1 : a.share > b.share ? 1 : 0)
  }

  #groupFor (share: ShareName): Group<H> {
    let group = this.#groups.get(share.key)
    if (group === undefined) {
      group = new Group<H>(share, this.opts.strategyFor(share.group), this.opts.random)
      this.#groups.set(share.key, group)
      this.port.listen(group)
    }
    return group
  }

  #removeIfEmpty (group: Group<H>): void {
    if (group.members.size > 0 || group.removed) return
    group.removed = true
    this.#groups.delete(group.share.key)
    this.port.unlisten(group)
    this.#dispatcher.drop(group)
  }
}

function ageMs (now: number, since: number): number {
  return Number.isFinite(since) ? Math.max(0, now - since) : 0
}
