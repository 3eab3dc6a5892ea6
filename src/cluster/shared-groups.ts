import type { Logger } from '../log/logger.js'
import type { DeliveryPacket } from '../protocol/aedes-internals.js'
import { RemoteMember, type MemberEvents, type MemberInput, type SharedCluster, type SharedLocal } from '../shared-subscriptions/cluster-port.js'
import type { GroupView } from '../shared-subscriptions/engine.js'
import type { ShareName } from '../shared-subscriptions/share-name.js'
import type { IncomingMessage, OutPacket } from '../shared-subscriptions/types.js'
import { encodeShareNote, type ShareNote } from './codec.js'
import { OwnedGroups } from './owned-groups.js'
import type { ShareOwners } from './share-owners.js'
import type { ShareRoutes } from './share-routes.js'

/** A subscription of a client connected here to a `$share/` filter. */
export interface LocalSub { share: ShareName, client: object, clientId: string, conn: string, token: unknown, tokenId: string, input: Omit<MemberInput, 'token'> }

export interface SharedGroupsDeps {
  nodeId: string
  /** This run of the node, so a lease of a former run is never taken for this one's. */
  brokerId: string
  owners: ShareOwners
  routes: ShareRoutes
  /** Sends a note to another node's stream. */
  send: (nodeId: string, fields: Array<string | Buffer>) => Promise<unknown>
  /** The other nodes alive. */
  others: () => Iterable<string>
  /** Wakes the inbox reader: a group was taken over. */
  wake: () => void
  /** The stream of a group's inbox. */
  inboxOf: (key: string) => string
  /** How long a group taken over waits for a member before it is given up. */
  graceMs: number
  /** Every group of the cluster, given those owned here (share-views.ts). */
  views: (owned: GroupView[]) => Promise<GroupView[]>
  log: Logger
}

/**
 * Shared subscriptions across the cluster (docs/cluster.md, "Shared subscriptions across nodes"): each group has
 * one owner node, which runs the single-node engine for the whole group; a member connected elsewhere is a
 * RemoteMember there. This is the member events of the shared hooks in cluster mode: an event of a group this node
 * owns goes to its engine, one of a group owned elsewhere to the owner's stream. Deliveries to remote members, and
 * their acknowledgements, travel the same way.
 */
export function createSharedGroups<C extends object> (deps: SharedGroupsDeps, local: SharedLocal<C>) {
  const { nodeId, log } = deps
  const engine = local.engine
  /** The subscriptions of clients connected here, by share key and by token id. */
  const subs = new Map<string, Map<string, LocalSub>>()
  const conns = new WeakMap<object, string>()
  const clients = new Map<string, C>()
  const tokens = new WeakMap<object, string>()
  /** The owners each connection here has dealt with: told when it closes. */
  const talkedTo = new Map<string, Set<string>>()
  let seq = 0
  /** Member events in order (a join waits for Redis: what follows it waits behind it). */
  let serial: Promise<unknown> = Promise.resolve()
  const inOrder = <T>(work: () => T | Promise<T>): Promise<T> => {
    const next = serial.then(work)
    serial = next.catch((err: unknown) => { log.error({ err }, 'shared member event not handled') })
    return next
  }
  const note = (to: string, body: ShareNote): void => {
    if (to === nodeId) return
    deps.send(to, encodeShareNote(body)).catch((err: unknown) => log.warn({ err, nodeId: to, note: body.t }, 'shared group note not sent'))
  }
  const connOf = (client: C): string => {
    let conn = conns.get(client)
    if (conn === undefined) {
      conns.set(client, conn = `${nodeId}:${deps.brokerId}:${++seq}`)
      clients.set(conn, client)
    }
    return conn
  }
  const tokenId = (token: unknown): string => {
    const t = token as object
    let id = tokens.get(t)
    if (id === undefined) tokens.set(t, id = String(++seq))
    return id
  }
  const talked = (conn: string, owner: string): void => {
    let set = talkedTo.get(conn)
    if (set === undefined) talkedTo.set(conn, set = new Set())
    set.add(owner)
  }
  const joinNote = (sub: LocalSub): ShareNote => ({ from: nodeId, t: 'join', key: sub.share.key, conn: sub.conn, clientId: sub.clientId, token: sub.tokenId, ...sub.input, window: local.windowOf(sub.client as C) })

  const groups = new OwnedGroups<C>({
    ...deps,
    engine,
    local,
    localSubs: key => subs.get(key)?.values() ?? [],
    joinLocal: sub => engine.join(sub.share, sub.clientId, { handle: sub.client as C, ...sub.input, token: sub.token }),
    note
  })
  /** Tells the owner of each group about this node's members again (it is new, or it asked). */
  const rejoin = (key: string, owner: string): void => {
    for (const sub of subs.get(key)?.values() ?? []) {
      talked(sub.conn, owner)
      note(owner, joinNote(sub))
    }
  }
  groups.onOwnerChanged = rejoin

  const forSubs = (key: string, token: unknown, each: (sub: LocalSub, owner: string | undefined) => void): void => {
    const id = tokens.get(token as object)
    const sub = id === undefined ? undefined : subs.get(key)?.get(id)
    if (sub === undefined) return
    subs.get(key)?.delete(sub.tokenId)
    if (subs.get(key)?.size === 0) subs.delete(key)
    each(sub, groups.ownerOf(key))
  }

  const members: MemberEvents<C> = {
    join: (share, client, clientId, input) => {
      const conn = connOf(client)
      const sub: LocalSub = { share, client, clientId, conn, token: input.token, tokenId: tokenId(input.token), input: { qos: input.qos, persistent: input.persistent, ready: input.ready } }
      let byToken = subs.get(share.key)
      if (byToken === undefined) subs.set(share.key, byToken = new Map())
      byToken.set(sub.tokenId, sub)
      return inOrder(async () => {
        await deps.owners.register(share.key, share.filter)
        deps.routes.add(share.key, share.filter)
        const owner = await groups.ownerFor(share)
        if (byToken.get(sub.tokenId) !== sub) return
        if (owner === nodeId) {
          engine.join(share, clientId, { handle: client, ...input })
        } else if (owner !== undefined) {
          talked(conn, owner)
          note(owner, joinNote(sub))
        }
      })
    },
    ready: client => {
      void inOrder(() => {
        const conn = conns.get(client)
        if (conn === undefined) return
        let here = false
        for (const byToken of subs.values()) {
          for (const sub of byToken.values()) {
            if (sub.client !== client) continue
            sub.input.ready = true
            if (groups.owns(sub.share.key)) here = true
          }
        }
        if (here) engine.ready(client)
        for (const owner of talkedTo.get(conn) ?? []) note(owner, { from: nodeId, t: 'ready', conn })
      })
    },
    unsubscribed: (key, token) => { void inOrder(() => { forSubs(key, token, (sub, owner) => { tell(sub, owner, 'unsubscribed') }) }) },
    disconnected: (key, token) => { void inOrder(() => { forSubs(key, token, (sub, owner) => { tell(sub, owner, 'disconnected') }) }) },
    gone: (client, clientId) => {
      void inOrder(() => {
        const conn = conns.get(client)
        if (conn === undefined) return
        engine.gone(client, clientId)
        for (const owner of talkedTo.get(conn) ?? []) note(owner, { from: nodeId, t: 'gone', conn, clientId })
        talkedTo.delete(conn)
        clients.delete(conn)
      })
    },
    capacity: client => {
      engine.capacity(client)
      const conn = conns.get(client)
      for (const owner of (conn === undefined ? undefined : talkedTo.get(conn)) ?? []) note(owner, { from: nodeId, t: 'capacity', conn: conn as string })
    },
    sessionEnded: clientId => {
      engine.sessionEnded(clientId)
      for (const other of deps.others()) note(other, { from: nodeId, t: 'ended', clientId })
    }
  }
  const tell = (sub: LocalSub, owner: string | undefined, t: 'unsubscribed' | 'disconnected'): void => {
    if (owner === nodeId) {
      if (t === 'unsubscribed') engine.unsubscribed(sub.share.key, sub.token)
      else engine.disconnected(sub.share.key, sub.token)
    } else if (owner !== undefined) {
      note(owner, { from: nodeId, t, key: sub.share.key, conn: sub.conn, token: sub.tokenId })
    }
  }

  /** A note from another node's stream. */
  const receive = (n: ShareNote): void => {
    switch (n.t) {
      case 'deliver': {
        const client = clients.get(n.conn)
        // the owner's delivery id; the delivery here gets a packet identifier of the client's session
        const id = Number(n.packet.messageId)
        const packet = { ...n.packet, messageId: undefined } as unknown as OutPacket
        const answer = client === undefined ? 'closed' : local.deliver(client, packet, ack => { note(n.from, ack.kind === 'ack' ? { from: nodeId, t: 'ack', conn: n.conn, id } : { from: nodeId, t: 'reject', conn: n.conn, id, why: ack.why, redispatch: ack.redispatch }) })
        if (answer === 'closed') note(n.from, { from: nodeId, t: 'gone', conn: n.conn, clientId: '' })
        else if (answer === 'busy') note(n.from, { from: nodeId, t: 'reject', conn: n.conn, id, why: 'the member could not take it then', redispatch: true })
        return
      }
      case 'owner':
        groups.ownerIs(n.key, n.owner)
        return
      default:
        void inOrder(async () => { await groups.receive(n) })
    }
  }

  /** The groups owned here, each member with the node it is connected to. */
  const ownedViews = (): GroupView[] =>
    engine.view(h => h instanceof RemoteMember ? h.nodeId : nodeId).map(v => ({ ...v, owner: nodeId }))
  const cluster: SharedCluster<C> = {
    members,
    // the member's node knows its packet identifiers and ACL; its Receive Maximum the owner keeps to itself
    mayReceive: (member, qos) => member.open && (qos === 0 || member.window === undefined || engine.inflightOf(member) < member.window),
    send: (member, packet) => {
      // the owner's delivery id stands for the packet identifier until the member's node gives it one
      const { messageId, ...rest } = packet
      note(member.nodeId, { from: nodeId, t: 'deliver', conn: member.conn, packet: { ...rest, messageId: messageId ?? 0 } })
    },
    removed: key => { groups.removed(key) },
    views: async () => await deps.views(ownedViews())
  }

  return {
    cluster,
    receive,
    ownedViews,
    /** A message of an owned group's inbox. */
    take: async (key: string, packet: DeliveryPacket): Promise<void> => {
      // a node that stops leaves what it has not taken in to the next owner
      if (engine.closed) throw new Error('the shared engine is closed')
      const group = engine.group(key)
      if (group === undefined) return
      await new Promise<void>((resolve, reject) => { engine.publish(group, packet as unknown as IncomingMessage, err => { if (err === undefined) resolve(); else reject(err) }) })
    },
    inboxes: () => groups.inboxes(),
    ownerOf: (key: string) => groups.ownerOf(key),
    /** Each heartbeat: leases renewed, groups without an owner taken over, members of dead nodes gone. */
    beat: async (alive: Set<string>, readAt: number): Promise<void> => { await inOrder(async () => { await groups.beat(alive, readAt) }) },
    /**
     * This node registered again after the others took it for dead: the owners elsewhere dropped its members (and
     * any join sent while it was taken for dead), so each is joined again.
     */
    rejoinAll: async (): Promise<void> => {
      await inOrder(() => {
        for (const key of subs.keys()) {
          const owner = groups.ownerOf(key)
          if (owner !== undefined && owner !== nodeId) rejoin(key, owner)
        }
      })
    },
    /** At start: every group a persistent session belongs to is registered (so it gets an owner). */
    start: async (): Promise<void> => {
      for (const share of await local.storedShares()) await deps.owners.register(share.key, share.filter)
    },
    close: async (): Promise<void> => { await groups.close() }
  }
}

export type SharedGroups = ReturnType<typeof createSharedGroups>
