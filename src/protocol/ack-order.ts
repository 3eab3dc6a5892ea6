import type { Client } from 'aedes'

/**
 * The QoS 1 PUBLISHes of one connection are acknowledged in the order they came, as mosquitto does: their publishes
 * end out of order now (one waits for a subscriber's PUBACK, live-copies.ts; the next has no subscriber and ends at
 * once), and a client may take a PUBACK as saying its earlier messages are through too. A slot per publish, in a list
 * on the connection; a publish that ends early waits for the ones before it.
 */
const ORDER = Symbol('culex.ackOrder')

interface Slot {
  done: (err?: Error | null) => void
  ended: boolean
  err: Error | null | undefined
  next: Slot | undefined
}

interface Order {
  head: Slot | undefined
  tail: Slot | undefined
}

type Ordered = Client & { [ORDER]?: Order }

/** Takes the connection's next slot for a publish: the callback returned calls `done` once those before it have. */
export function inArrivalOrder (client: Client, done: (err?: Error | null) => void): (err?: Error | null) => void {
  let order = (client as Ordered)[ORDER]
  if (order === undefined) (client as Ordered)[ORDER] = order = { head: undefined, tail: undefined }
  const slot: Slot = { done, ended: false, err: undefined, next: undefined }
  if (order.tail === undefined) order.head = slot
  else order.tail.next = slot
  order.tail = slot
  const list = order
  return (err) => {
    slot.ended = true
    slot.err = err
    release(list)
  }
}

function release (order: Order): void {
  while (order.head?.ended === true) {
    const slot = order.head
    order.head = slot.next
    if (order.head === undefined) order.tail = undefined
    slot.done(slot.err)
  }
}
