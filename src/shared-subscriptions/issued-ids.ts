/**
 * What a packet identifier of a shared delivery holds on its connection, until PUBACK or PUBCOMP ends it: the broker
 * counter of the message (NO_COUNTER when it has none), or RECEIVED once the member sent PUBREC for a QoS 2 one.
 */
type Issued = number
const NO_COUNTER = -1
const RECEIVED = -2

/**
 * The packet identifiers shared deliveries went out under, per connection (a connection object, opaque here): what
 * tells a member's acknowledgement of a shared delivery from one of its session's own, and what the session queue
 * must record of it.
 */
export class IssuedIds<C extends object> {
  readonly #byConnection = new WeakMap<C, Map<number, Issued>>()

  /** A QoS 1/2 shared delivery went out under this id. */
  issue (conn: C, id: number, brokerCounter: number | undefined): void {
    let ids = this.#byConnection.get(conn)
    if (ids === undefined) this.#byConnection.set(conn, ids = new Map())
    ids.set(id, brokerCounter ?? NO_COUNTER)
  }

  has (conn: C, id: number): boolean {
    return this.#byConnection.get(conn)?.has(id) ?? false
  }

  /** The delivery under this id is over (acknowledged, completed, refused). */
  end (conn: C, id: number): void {
    this.#byConnection.get(conn)?.delete(id)
  }

  /** PUBREC: the member has the QoS 2 message, a PUBREL is owed under this id. */
  received (conn: C, id: number): void {
    this.#byConnection.get(conn)?.set(id, RECEIVED)
  }

  /**
   * What aedes' outgoingUpdate for this packet is to a persistent session: `pubrel`, the PUBREL of a shared QoS 2
   * delivery (recorded in the session, to be resent); `skip`, a shared delivery (the group queue holds it, not the
   * session); undefined, none of them.
   */
  sharedUpdate (conn: C, packet: { cmd?: string, messageId?: number | null, brokerCounter?: number }): 'pubrel' | 'skip' | undefined {
    const id = packet.messageId
    const state = id == null ? undefined : this.#byConnection.get(conn)?.get(id)
    if (state === undefined) return undefined
    if (packet.cmd === 'pubrel') return state === RECEIVED ? 'pubrel' : undefined
    return state === NO_COUNTER || state === packet.brokerCounter ? 'skip' : undefined
  }
}
