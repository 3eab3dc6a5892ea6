import type { Delivery, Entry, Group } from './group.js'

/**
 * Every unacknowledged shared delivery, found by (connection, packet identifier) when an acknowledgement comes,
 * by connection when it closes, and oldest first for the ack timeout.
 */
export class DeliveryTracker<H> {
  readonly #byHandle = new Map<H, Map<number, Delivery<H>>>()
  /** Live (not timed out) deliveries in the order they were sent, which is the order their timeouts fall due. */
  readonly #order = new Set<Delivery<H>>()

  /** Deliveries waiting for an acknowledgement and not timed out, over every connection. */
  get size (): number {
    return this.#order.size
  }

  /**
   * Unacknowledged deliveries on one connection, timed-out ones included: the member still holds those, so a member
   * that stops acknowledging fills its in-flight cap and is passed over instead of delaying message after message.
   */
  heldOn (handle: H | undefined): number {
    return handle === undefined ? 0 : this.#byHandle.get(handle)?.size ?? 0
  }

  get (handle: H, messageId: number): Delivery<H> | undefined {
    return this.#byHandle.get(handle)?.get(messageId)
  }

  add (entry: Entry<H>, handle: H, clientId: string, messageId: number, sentAt: number): Delivery<H> {
    const d: Delivery<H> = { entry, handle, clientId, messageId, sentAt, expired: false }
    let map = this.#byHandle.get(handle)
    if (map === undefined) this.#byHandle.set(handle, map = new Map())
    map.set(messageId, d)
    this.#order.add(d)
    entry.live++
    entry.deliveries.push(d)
    return d
  }

  /** Arrival of the oldest message in flight, per group (epoch ms); walked when the metrics or the API read it. */
  oldestByGroup (): Map<Group<H>, number> {
    const out = new Map<Group<H>, number>()
    for (const map of this.#byHandle.values()) {
      for (const d of map.values()) {
        const { group, enqueuedAt, state } = d.entry
        if (state === 'done') continue
        const seen = out.get(group)
        if (seen === undefined || enqueuedAt < seen) out.set(group, enqueuedAt)
      }
    }
    return out
  }

  /** Forgets every delivery of the group's messages (the group went to another node). */
  forgetGroup (group: Group<H>): void {
    for (const map of this.#byHandle.values()) {
      for (const d of map.values()) if (d.entry.group === group) this.remove(d)
    }
  }

  /** Forgets a delivery (acknowledged, or its entry is done with). */
  remove (d: Delivery<H>): void {
    const map = this.#byHandle.get(d.handle)
    if (map?.get(d.messageId) === d) {
      map.delete(d.messageId)
      if (map.size === 0) this.#byHandle.delete(d.handle)
    }
    this.#detach(d)
  }

  /**
   * Marks deliveries sent at or before `deadline` as timed out and returns them: the message may go to another
   * member, but the delivery stays findable, so an acknowledgement that still comes completes the message.
   */
  expire (deadline: number): Array<Delivery<H>> {
    const out: Array<Delivery<H>> = []
    for (const d of this.#order) {
      if (d.sentAt > deadline) break
      this.#order.delete(d)
      d.expired = true
      d.entry.live--
      out.push(d)
    }
    return out
  }

  /** Forgets every delivery of a connection that closed; returns those that had not timed out (lost now). */
  takeAll (handle: H): Array<Delivery<H>> {
    const map = this.#byHandle.get(handle)
    this.#byHandle.delete(handle)
    const lost: Array<Delivery<H>> = []
    for (const d of map?.values() ?? []) {
      if (!d.expired) lost.push(d)
      this.#detach(d)
    }
    return lost
  }

  #detach (d: Delivery<H>): void {
    const entry = d.entry
    const i = entry.deliveries.indexOf(d)
    if (i >= 0) entry.deliveries.splice(i, 1)
    if (d.expired) return
    d.expired = true
    this.#order.delete(d)
    entry.live--
  }
}
