import type { StoredGroupMessage } from '../store/group-queue.js'
import type { GroupView, SharedEngine } from './engine.js'
import type { ShareName } from './share-name.js'
import type { OutPacket } from './types.js'

/**
 * A member connected to another node of the cluster, as the owner node's engine sees it: its connection there
 * (`conn`, unique in the cluster) stands for the client's connection. Deliveries to it travel over the bus.
 */
export class RemoteMember {
  /** The owner's own delivery identifiers for this member (its node maps each to a packet identifier there). */
  #nextId = 0
  /** Its subscriptions here: token → share key (to be marked offline if its node dies). */
  readonly joined = new Map<string, string>()
  open = true

  /** `window`: its MQTT 5 Receive Maximum, which the owner keeps its QoS 1/2 deliveries within. */
  constructor (readonly nodeId: string, readonly conn: string, readonly clientId: string, public window?: number) {}

  nextId (): number {
    this.#nextId = this.#nextId % 0xffff + 1
    return this.#nextId
  }
}

export type SharedHandle<C> = C | RemoteMember

/** How a member's node answers a delivery the owner sent it. */
export type RemoteAck = { kind: 'ack' } | { kind: 'reject', why: string, redispatch: boolean }

/** What a member's subscription brings to its group (shared hooks → members). */
export interface MemberInput { token: unknown, qos: number, persistent: boolean, ready: boolean }

/**
 * Where the shared hooks send what happens to a local member. On one node it is the engine itself
 * (`localMembers`); in cluster mode src/cluster/shared-groups.ts, which hands each event to the node owning the
 * group (docs/cluster.md, "Shared subscriptions across nodes").
 */
export interface MemberEvents<C> {
  /** Resolves once the member's group knows it (the SUBACK waits for it). */
  join: (share: ShareName, client: C, clientId: string, input: MemberInput) => Promise<void> | undefined
  ready: (client: C) => void
  unsubscribed: (key: string, token: unknown) => void
  disconnected: (key: string, token: unknown) => void
  gone: (client: C, clientId: string) => void
  capacity: (client: C) => void
  sessionEnded: (clientId: string) => void
}

/** The engine as the member events of one node. */
export function localMembers<C> (engine: SharedEngine<SharedHandle<C>>): MemberEvents<C> {
  return {
    join: (share, client, clientId, input) => {
      engine.join(share, clientId, { handle: client, ...input })
      return undefined
    },
    ready: client => { engine.ready(client) },
    unsubscribed: (key, token) => { engine.unsubscribed(key, token) },
    disconnected: (key, token) => { engine.disconnected(key, token) },
    gone: (client, clientId) => { engine.gone(client, clientId) },
    capacity: client => { engine.capacity(client) },
    sessionEnded: clientId => { engine.sessionEnded(clientId) }
  }
}

/** What the shared hooks give the cluster: the engine, and deliveries to a local client on another node's behalf. */
export interface SharedLocal<C> {
  engine: SharedEngine<SharedHandle<C>>
  /**
   * Sends a delivery the owner node decided to a client connected here; `acked` runs with its PUBACK/PUBREC (or its
   * refusal). 'closed': the connection is gone; 'busy': it cannot take a QoS 1/2 message now.
   */
  deliver: (client: C, packet: OutPacket, acked: (ack: RemoteAck) => void) => 'sent' | 'closed' | 'busy'
  /** The client's MQTT 5 Receive Maximum (undefined: MQTT 3.1.1, none). */
  windowOf: (client: C) => number | undefined
  /** The persistent members of a group, from the store (a node taking a group over). */
  storedMembers: (share: ShareName) => Promise<Array<{ clientId: string, qos: number }>>
  /** The group's durable queue as the store has it now. */
  storedQueue: (key: string) => Promise<StoredGroupMessage[]>
  /** The shares persistent sessions subscribe to (at start: each must have an owner). */
  storedShares: () => Promise<ShareName[]>
}

/** What the cluster gives the shared hooks (broker.ts joins the two). */
export interface SharedCluster<C> {
  members: MemberEvents<C>
  /** The engine's port for a member on another node. */
  mayReceive: (member: RemoteMember, qos: number) => boolean
  send: (member: RemoteMember, packet: OutPacket) => void
  /** The owner's engine removed the group (its last member left). */
  removed: (key: string) => void
  /** Every group of the cluster: those owned here as they are, the others as their owners last published them. */
  views: () => Promise<GroupView[]>
}
