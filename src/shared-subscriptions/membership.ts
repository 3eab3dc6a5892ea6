/**
 * The members of one shared subscription. Pure: a member's connection (`handle`) and the aedes deliver function
 * that identifies its subscription (`token`) are opaque values here.
 *
 * A clean-session member exists while it is subscribed and connected. A persistent (clean=false) member stays
 * while its session lasts, offline between connections: it keeps the group durable and makes its queue wait for
 * a member to come back, but it is never chosen while offline.
 */
export interface Member<H> {
  readonly clientId: string
  persistent: boolean
  /** Granted QoS: deliveries go out at min(publish QoS, this). */
  qos: number
  /** The current connection; undefined while a persistent member is offline. */
  handle: H | undefined
  /** What identifies this subscription when aedes removes it (its deliver function). */
  token: unknown
  /** Connected and done with CONNACK and its session's own queue: it may be sent messages. */
  ready: boolean
}

export interface JoinInput<H> {
  handle: H
  token: unknown
  qos: number
  persistent: boolean
  ready: boolean
}

export class Membership<H> {
  /** In join order, which is the order round-robin walks. */
  readonly #members = new Map<string, Member<H>>()
  /** Cached for the hot path (every message asks); dropped on every change. */
  #online: Array<Member<H> & { handle: H }> | undefined
  #durable: boolean | undefined

  get size (): number {
    return this.#members.size
  }

  /** True while any member is persistent: the group's messages are then kept in the store until acknowledged. */
  get durable (): boolean {
    if (this.#durable === undefined) {
      this.#durable = false
      for (const m of this.#members.values()) if (m.persistent) this.#durable = true
    }
    return this.#durable
  }

  get (clientId: string): Member<H> | undefined {
    return this.#members.get(clientId)
  }

  all (): IterableIterator<Member<H>> {
    return this.#members.values()
  }

  /** Subscribe, a QoS change, a session restore or a takeover by a new connection of the same client id. */
  join (clientId: string, input: JoinInput<H>): Member<H> {
    this.#changed()
    const existing = this.#members.get(clientId)
    if (existing !== undefined) {
      Object.assign(existing, input)
      return existing
    }
    const member: Member<H> = { clientId, ...input }
    this.#members.set(clientId, member)
    return member
  }

  /** A persistent member found in the store at start: offline until its client reconnects. */
  restore (clientId: string, qos: number): Member<H> {
    this.#changed()
    const member: Member<H> = { clientId, persistent: true, qos, handle: undefined, token: undefined, ready: false }
    this.#members.set(clientId, member)
    return member
  }

  /** The member whose subscription `token` identifies, if it still belongs to that subscription. */
  byToken (token: unknown): Member<H> | undefined {
    for (const m of this.#members.values()) if (m.token === token && token !== undefined) return m
    return undefined
  }

  /** Marks the members on this connection ready; returns whether any was. */
  ready (handle: H): boolean {
    let any = false
    for (const m of this.#members.values()) {
      if (m.handle === handle && !m.ready) {
        m.ready = true
        any = true
      }
    }
    if (any) this.#changed()
    return any
  }

  /** The connection closed: a persistent member goes offline, a clean one leaves. Returns whether it left. */
  disconnected (member: Member<H>): boolean {
    this.#changed()
    if (!member.persistent) {
      this.#members.delete(member.clientId)
      return true
    }
    member.handle = undefined
    member.token = undefined
    member.ready = false
    return false
  }

  leave (clientId: string): boolean {
    this.#changed()
    return this.#members.delete(clientId)
  }

  /**
   * The client's persistent session ended: an offline member leaves (true); a connected one stays as a clean member
   * and leaves when its connection closes (false). Undefined when it is not a member.
   */
  sessionEnded (clientId: string): boolean | undefined {
    const member = this.#members.get(clientId)
    if (member === undefined) return undefined
    this.#changed()
    if (member.handle === undefined) return this.#members.delete(clientId)
    member.persistent = false
    return false
  }

  /** Members that may be sent messages now, in join order. */
  /** Members that may be sent messages now, in join order; the same array until membership changes (do not modify). */
  online (): ReadonlyArray<Member<H> & { handle: H }> {
    if (this.#online === undefined) {
      const out: Array<Member<H> & { handle: H }> = []
      for (const m of this.#members.values()) if (m.ready && m.handle !== undefined) out.push(m as Member<H> & { handle: H })
      this.#online = out
    }
    return this.#online
  }

  #changed (): void {
    this.#online = undefined
    this.#durable = undefined
  }
}
