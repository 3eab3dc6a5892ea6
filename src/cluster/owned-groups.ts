import type { Logger } from '../log/logger.js'
import { RemoteMember, type SharedHandle, type SharedLocal } from '../shared-subscriptions/cluster-port.js'
import type { SharedEngine } from '../shared-subscriptions/engine.js'
import { isShareName, parseShare, shareTopic, type ShareName } from '../shared-subscriptions/share-name.js'
import type { ShareNote } from './codec.js'
import type { Inbox } from './share-inbox.js'
import type { ShareOwners } from './share-owners.js'
import type { ShareRoutes } from './share-routes.js'
import type { LocalSub } from './shared-groups.js'

export interface OwnedGroupsDeps<C> {
  nodeId: string
  brokerId: string
  owners: ShareOwners
  routes: ShareRoutes
  wake: () => void
  /** The other nodes alive. */
  others: () => Iterable<string>
  graceMs: number
  log: Logger
  engine: SharedEngine<SharedHandle<C>>
  local: SharedLocal<C>
  inboxOf: (key: string) => string
  /** This node's own subscriptions to a group. */
  localSubs: (key: string) => Iterable<LocalSub>
  joinLocal: (sub: LocalSub) => void
  note: (to: string, body: ShareNote) => void
}

interface Owned { share: ShareName, claimedAt: number, inbox: Inbox, restored: boolean }

/** How many dead node ids a node remembers for holding their notes (far more than a cluster has nodes). */
const MAX_DEAD_REMEMBERED = 1024

/** A note from a node this one took for dead at its last heartbeat, held until the next one says otherwise. */
interface Held { note: ShareNote, at: number }

/**
 * Which node owns each group, and the groups this node owns: taking one over (its persistent members and durable
 * queue from the store, its inbox from where the former owner stopped), its leases renewed, the members other nodes
 * announce, and what becomes of them when their node dies.
 */
export class OwnedGroups<C> {
  readonly #owned = new Map<string, Owned>()
  /** The owner of the groups this node has members of, as last known. */
  readonly #ownerOf = new Map<string, string>()
  /** Members connected to other nodes, by connection. */
  readonly #remotes = new Map<string, RemoteMember>()
  /** The nodes alive at the last heartbeat, and those found dead since they last were. */
  #alive = new Set<string>()
  readonly #dead = new Set<string>()
  #held: Held[] = []
  readonly #d: OwnedGroupsDeps<C>
  #closed = false
  /** The group has a new owner: this node's members of it join there. */
  onOwnerChanged: (key: string, owner: string) => void = () => {}

  constructor (deps: OwnedGroupsDeps<C>) {
    this.#d = deps
  }

  owns (key: string): boolean {
    return this.#owned.has(key)
  }

  ownerOf (key: string): string | undefined {
    return this.#owned.has(key) ? this.#d.nodeId : this.#ownerOf.get(key)
  }

  /** The owner of the group, taken over by this node if it has none. */
  async ownerFor (share: ShareName): Promise<string | undefined> {
    const known = this.ownerOf(share.key)
    if (known !== undefined) return known
    for (let tries = 0; tries < 3; tries++) {
      const [owner] = await this.#d.owners.owners([share.key])
      if (owner !== undefined && owner !== this.#d.nodeId) {
        this.#ownerOf.set(share.key, owner)
        return owner
      }
      if (await this.#claim(share)) return this.#d.nodeId
    }
    return undefined
  }

  /** Another node says who owns the group. */
  ownerIs (key: string, owner: string): void {
    if (owner === this.#d.nodeId || this.#ownerOf.get(key) === owner) return
    this.#ownerOf.set(key, owner)
    this.onOwnerChanged(key, owner)
  }

  inboxes (): Map<string, Inbox> {
    const out = new Map<string, Inbox>()
    for (const [key, o] of this.#owned) if (o.restored) out.set(key, o.inbox)
    return out
  }

  /** The engine removed an owned group (its last member left). */
  removed (key: string): void {
    if (!this.#owned.delete(key)) return
    this.#d.owners.release(key).catch((err: unknown) => this.#d.log.warn({ err, share: shareTopic(key) }, 'shared group lease not released'))
  }

  /**
   * A note about an owned group's remote member. One from a node taken for dead is held: a node stopped past
   * cluster.nodeTimeoutMs (SIGSTOP, a frozen VM) finishes the work it was doing when it resumes, before its next
   * heartbeat finds it removed, and a member it joined then would be dropped again at this node's next heartbeat,
   * with what was sent to it meanwhile moved to another member after it had arrived: a second delivery. Held notes
   * are applied once the node is found alive, in their order, and dropped once a heartbeat that read the cluster
   * after they came finds it dead still; such a node joins its members again when it registers again (rejoinAll).
   * A node never seen yet (just started) is not held up.
   */
  async receive (n: ShareNote): Promise<void> {
    if (n.t !== 'owner' && n.t !== 'deliver' && this.#dead.has(n.from)) {
      this.#held.push({ note: n, at: Date.now() })
      return
    }
    await this.#apply(n)
  }

  async #apply (n: ShareNote): Promise<void> {
    const { engine } = this.#d
    if (n.t === 'join') {
      const share = shareOf(n.key)
      if (share === undefined) return
      if (!this.#owned.has(n.key) && !await this.#claim(share)) {
        const [owner] = await this.#d.owners.owners([n.key])
        if (owner !== undefined) this.#d.note(n.from, { from: this.#d.nodeId, t: 'owner', key: n.key, owner })
        return
      }
      let member = this.#remotes.get(n.conn)
      if (member === undefined) this.#remotes.set(n.conn, member = new RemoteMember(n.from, n.conn, n.clientId, n.window))
      member.joined.set(n.token, n.key)
      engine.join(share, n.clientId, { handle: member, token: `${n.conn}|${n.token}`, qos: n.qos, persistent: n.persistent, ready: n.ready })
      return
    }
    if (n.t === 'ended') {
      engine.sessionEnded(n.clientId)
      return
    }
    if (n.t === 'owner' || n.t === 'deliver') return
    const member = this.#remotes.get(n.conn)
    if (member === undefined) return
    switch (n.t) {
      case 'ready': engine.ready(member); break
      case 'capacity': engine.capacity(member); break
      case 'ack': engine.ack(member, n.id); break
      case 'reject': engine.reject(member, n.id, n.why, n.redispatch); break
      case 'unsubscribed':
      case 'disconnected':
        member.joined.delete(n.token)
        if (n.t === 'unsubscribed') engine.unsubscribed(n.key, `${n.conn}|${n.token}`)
        else engine.disconnected(n.key, `${n.conn}|${n.token}`)
        break
      case 'gone': this.#gone(member)
    }
  }

  /** Each heartbeat (`alive`: the nodes alive when it read the cluster, at `readAt`). */
  async beat (alive: Set<string>, readAt: number): Promise<void> {
    const { owners, routes, engine, log } = this.#d
    for (const id of this.#alive) if (!alive.has(id)) this.#dead.add(id)
    for (const id of alive) this.#dead.delete(id)
    // node ids that never come back (a rotating deployment's): the oldest are forgotten
    for (const id of this.#dead) {
      if (this.#dead.size <= MAX_DEAD_REMEMBERED) break
      this.#dead.delete(id)
    }
    this.#alive = alive
    for (const key of await owners.renew([...this.#owned.keys()])) {
      log.warn({ share: shareTopic(key) }, 'shared group taken over by another node')
      this.#owned.delete(key)
      engine.forget(key)
    }
    routes.replace(await owners.all())
    for (const member of [...this.#remotes.values()]) if (!alive.has(member.nodeId)) this.#gone(member)
    const held = this.#held
    this.#held = []
    for (const h of held) {
      if (alive.has(h.note.from)) await this.#apply(h.note)
      else if (this.#dead.has(h.note.from) && h.at >= readAt) this.#held.push(h)
    }
    const unowned = [...routes.keys()].filter(k => !this.#owned.has(k))
    const found = await owners.owners(unowned)
    for (let i = 0; i < unowned.length; i++) {
      const key = unowned[i]
      const owner = found[i]
      if (owner === undefined || !alive.has(owner)) {
        const share = shareOf(key)
        if (share !== undefined && owner === undefined) await this.#claim(share)
      } else if (this.#ownerOf.has(key) || hasAny(this.#d.localSubs(key))) {
        this.ownerIs(key, owner)
      }
    }
    const now = Date.now()
    for (const [key, o] of this.#owned) {
      if (o.restored && now - o.claimedAt >= this.#d.graceMs) engine.releaseIfEmpty(key)
    }
  }

  /** The node stops: its groups are given up (what they hold is in the store and their inboxes) for the others. */
  async close (): Promise<void> {
    this.#closed = true
    const owned = [...this.#owned.keys()]
    this.#owned.clear()
    await this.#d.owners.resign(owned)
  }

  /** The member's connection closed, or its node died: what it had not acknowledged goes to other members. */
  #gone (member: RemoteMember): void {
    member.open = false
    this.#remotes.delete(member.conn)
    for (const [token, key] of member.joined) this.#d.engine.disconnected(key, `${member.conn}|${token}`)
    this.#d.engine.gone(member, member.clientId)
  }

  /**
   * Takes a group without a live owner over: its persistent members and its durable queue as the store has them,
   * this node's members, then its inbox from the first message the former owner had not taken in. The other nodes
   * are told, and their members join here.
   */
  async #claim (share: ShareName): Promise<boolean> {
    const d = this.#d
    if (this.#closed || !await d.owners.claim(share.key, share.filter)) return false
    const owned: Owned = { share, claimedAt: Date.now(), inbox: { stream: d.inboxOf(share.key), lastId: '0-0', restored: new Set() }, restored: false }
    this.#owned.set(share.key, owned)
    this.#ownerOf.delete(share.key)
    d.routes.add(share.key, share.filter)
    d.engine.ensure(share)
    for (const sub of d.localSubs(share.key)) d.joinLocal(sub)
    for (const m of await d.local.storedMembers(share)) d.engine.restoreMember(share, m.clientId, m.qos)
    const stored = await d.local.storedQueue(share.key)
    d.engine.restoreQueue(share.key, stored)
    for (const s of stored) owned.inbox.restored.add(`${s.brokerId ?? ''}:${String(s.brokerCounter)}`)
    owned.restored = true
    d.log.info({ share: shareTopic(share.key), queued: stored.length }, 'shared group taken over')
    // the line one node writes at start for the same restore
    if (stored.length > 0) d.log.info({ share: shareTopic(share.key), messages: stored.length }, 'shared queue restored')
    for (const other of d.others()) d.note(other, { from: d.nodeId, t: 'owner', key: share.key, owner: d.nodeId })
    d.wake()
    return true
  }
}

function hasAny (items: Iterable<unknown>): boolean {
  for (const _ of items) return true
  return false
}

export function shareOf (key: string): ShareName | undefined {
  const parsed = parseShare(shareTopic(key))
  return isShareName(parsed) ? parsed : undefined
}
