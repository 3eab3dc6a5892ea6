import type { Client } from 'aedes'

/**
 * A QoS 1/2 PUBLISH written to an MQTT 5 client and not completed yet, as a dead letter would need it: the packet
 * the router or the replay sent (kept as it is, not copied).
 */
export interface InflightCopy {
  topic: string
  payload: unknown
  qos: number
  retain?: boolean
  /** The share name of a shared-subscription delivery (its group settles a refusal); absent or '' otherwise. */
  group?: string
}

export function isShared (copy: InflightCopy): boolean {
  return copy.group !== undefined && copy.group !== ''
}

/**
 * The QoS 1/2 PUBLISHes an MQTT 5 client has not completed, by packet identifier: sent and not answered by PUBACK,
 * PUBCOMP, or a PUBREC with a reason code of 0x80 or more. The client's Receive Maximum bounds them (MQTT 5
 * §4.9, [MQTT-3.3.4-9]): every path that sends a new one asks `full` first — the delivery router, the queue replay,
 * the shared-subscription dispatcher — and the paths that stopped are told (`onFreed`) when a completion makes room.
 * The copies are kept for the dead letter of a refusal (acknowledgements.ts); a clean session's client holds at most
 * Receive Maximum of them, which it chose.
 */
export class ReceiveWindow {
  readonly #copies = new Map<number, InflightCopy>()
  readonly #freed: Array<() => void> = []

  constructor (readonly maximum: number) {}

  get size (): number {
    return this.#copies.size
  }

  get full (): boolean {
    return this.#copies.size >= this.maximum
  }

  sent (messageId: number, copy: InflightCopy): void {
    this.#copies.set(messageId, copy)
  }

  /** The client completed (or refused) the PUBLISH: its copy, and room for the paths that waited for it. */
  settle (messageId: number): InflightCopy | undefined {
    const copy = this.#copies.get(messageId)
    if (copy === undefined) return undefined
    const wasFull = this.full
    this.#copies.delete(messageId)
    if (wasFull) for (const freed of this.#freed) freed()
    return copy
  }

  /** The copies not completed, but for shared deliveries (their group redelivers them). */
  unshared (): InflightCopy[] {
    return [...this.#copies.values()].filter(copy => !isShared(copy))
  }

  /** `freed` runs each time a completion takes the window from full to one free. */
  onFreed (freed: () => void): void {
    this.#freed.push(freed)
  }
}

/** Symbol-keyed like the v5 connection itself: the router reads it for every copy. */
const WINDOW = Symbol('culex.receiveWindow')
type Marked = { [WINDOW]?: ReceiveWindow }

export function attachReceiveWindow (client: Client, receiveMaximum: number): ReceiveWindow {
  const window = new ReceiveWindow(receiveMaximum)
  ;(client as Client & Marked)[WINDOW] = window
  return window
}

/** The window of an MQTT 5 connection; undefined for MQTT 3.1.1 (which has no Receive Maximum). */
export function receiveWindowOf (client: Client): ReceiveWindow | undefined {
  return (client as Client & Marked)[WINDOW]
}
