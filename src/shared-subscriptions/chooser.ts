import type { DeliveryTracker } from './deliveries.js'
import type { Entry, Group } from './group.js'
import type { Member } from './membership.js'
import { deliveredQos, isFull } from './policy.js'

export type Online<H> = Member<H> & { handle: H }
interface Slot<H> { id: string, member: Online<H>, inflight: number, full: boolean }

/**
 * Which connected member takes one message: the group's strategy over its connected members, each with its
 * in-flight count and cap, skipping the member that just lost the message when there is another one, and members
 * the ACL keeps the topic from (`mayReceive`).
 */
export class MemberChooser<H> {
  /** The picker's candidates for each list of online members, reused message after message (the hot path). */
  readonly #slots = new WeakMap<ReadonlyArray<Online<H>>, Array<Slot<H>>>()

  constructor (
    private readonly deliveries: DeliveryTracker<H>,
    private readonly cap: number,
    private readonly mayReceive: (handle: H, topic: string, qos: number) => boolean
  ) {}

  /** The member for this entry now, or undefined when nobody can take it. */
  choose (group: Group<H>, entry: Entry<H>): Online<H> | undefined {
    const online = group.members.online()
    if (online.length === 0) return undefined
    let slots = this.#slots.get(online)
    if (slots === undefined) {
      slots = online.map(member => ({ id: member.clientId, member, inflight: 0, full: false }))
      this.#slots.set(online, slots)
    }
    for (const slot of slots) {
      slot.inflight = this.deliveries.heldOn(slot.member.handle)
      slot.full = isFull(slot.inflight, this.cap, deliveredQos(entry.qos, slot.member.qos))
    }
    // A message a member lost goes to another one if there is any.
    if (entry.lostBy !== undefined && slots.length > 1) {
      const others = slots.filter(s => s.id !== entry.lostBy)
      if (others.length > 0) slots = others
    }
    const input = { topic: entry.topic, publisher: entry.publisher }
    while (slots.length > 0) {
      const picked: Slot<H> | undefined = group.picker.pick(slots, input)
      if (picked === undefined) return undefined
      if (this.mayReceive(picked.member.handle, entry.topic, deliveredQos(entry.qos, picked.member.qos))) return picked.member
      slots = slots.filter((s: Slot<H>) => s !== picked)
    }
    return undefined
  }

  /** Whether any connected member could take a QoS 1/2 message now. */
  anyCapacity (group: Group<H>): boolean {
    return group.members.online().some(m => !isFull(this.deliveries.heldOn(m.handle), this.cap, 1))
  }
}
