import { topicMatches } from './topic.js'

// How many copies of one message a connection is to get: aedes calls the router once per matching subscription,
// and these counts let it send one copy (at the highest QoS granted) and drop the others.

/** True for the second and later copies of the message `key` (`matches` of them expected). */
export function isExtraCopy (pending: Map<string, number>, key: string, matches: number): boolean {
  const left = pending.get(key)
  if (left === undefined) {
    // A subscription change between copies can strand an entry; the cap keeps that from growing.
    if (pending.size > 10_000) pending.clear()
    pending.set(key, matches - 1)
    return false
  }
  if (left <= 1) pending.delete(key)
  else pending.set(key, left - 1)
  return true
}

/**
 * `matches`: the client's subscriptions matching the topic, one aedes listener each, so one copy each to expect.
 * `deliverable`: those that may deliver it — for the client's own message (`own`), not the No Local ones — and
 * `maxQos` the highest QoS granted among them.
 */
export interface DeliveryPlan { matches: number, maxQos: number, deliverable: number }

export function planDelivery (subscriptions: Record<string, { qos: number, nl?: boolean }>, topic: string, own = false): DeliveryPlan {
  let matches = 0
  let deliverable = 0
  let maxQos = 0
  for (const filter in subscriptions) {
    // Shared subscriptions are dispatched by their group, never as a plain subscription.
    if (filter.startsWith('$share/')) continue
    if (!topicMatches(filter, topic)) continue
    matches++
    const sub = subscriptions[filter]
    if (own && sub.nl === true) continue
    deliverable++
    if (sub.qos > maxQos) maxQos = sub.qos
  }
  return { matches, maxQos, deliverable }
}
