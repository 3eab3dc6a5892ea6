/**
 * Who is told of each QoS 1/2 PUBLISH written to a connection with a new packet identifier, and when its message
 * arrived at the broker (src/delivery-lag measures the time to the client's final acknowledgement). One observer
 * per connection; a connection without one costs a WeakMap lookup per copy.
 */
export interface SentObserver {
  /** `group`: the share name for a shared-subscription delivery, '' otherwise. `arrivedAt`: epoch ms. */
  sent: (messageId: number, qos: number, arrivedAt: number, group: string) => void
}

const observers = new WeakMap<object, SentObserver>()

export function observeSent (client: object, observer: SentObserver): void {
  observers.set(client, observer)
}

export function sentObserver (client: object): SentObserver | undefined {
  return observers.get(client)
}
