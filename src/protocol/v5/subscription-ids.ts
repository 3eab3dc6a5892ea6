import { topicMatches } from '../topic.js'
import type { V5Connection } from './connection.js'

/** The largest Subscription Identifier (a Variable Byte Integer, MQTT 5 §3.8.2.1.2). */
const MAX_SUBSCRIPTION_ID = 268_435_455

interface Subscribe {
  subscriptions?: Array<{ topic: string, subscriptionIdentifier?: number }>
  properties?: { subscriptionIdentifier?: number | number[] }
}

/**
 * A SUBSCRIBE's Subscription Identifier, before aedes handles the packet: every filter of the packet takes it
 * (MQTT 5 §3.8.2.1.2), on the subscription object aedes hands the authorize steps and the store, so a persistent
 * session keeps it (store/subscription-index.ts). False for an identifier that is a protocol error: 0, or more
 * than one.
 */
export function checkSubscriptionId (packet: Subscribe): boolean {
  const id = packet.properties?.subscriptionIdentifier
  if (id === undefined) return true
  if (typeof id !== 'number' || id < 1 || id > MAX_SUBSCRIPTION_ID) return false
  for (const sub of packet.subscriptions ?? []) sub.subscriptionIdentifier = id
  return true
}

/**
 * The last subscribe step: a granted filter of a v5 client takes its identifier in the connection's table, or
 * loses the one it had. aedes restores a persistent session's subscriptions through the same steps, with the
 * stored records, so a restored filter gets its identifier back.
 */
export function noteSubscriptionId (connection: V5Connection, sub: { topic: string, subscriptionIdentifier?: unknown }): void {
  const id = sub.subscriptionIdentifier
  if (typeof id === 'number' && id > 0) (connection.subscriptionIds ??= new Map()).set(sub.topic, id)
  else connection.subscriptionIds?.delete(sub.topic)
}

export function forgetSubscriptionIds (connection: V5Connection, filters: readonly string[]): void {
  if (connection.subscriptionIds === undefined) return
  for (const filter of filters) connection.subscriptionIds.delete(filter)
}

/**
 * The Subscription Identifiers a PUBLISH of `topic` carries to this client (MQTT 5 §3.3.4: one per matching
 * subscription that has one): of the client's subscriptions that deliver it — not a No Local one for its own
 * message — or, for a shared group's copy, of its `$share/<group>/` subscriptions. Undefined when there is none,
 * at once for a client that never gave an identifier.
 */
export function subscriptionIdsFor (connection: V5Connection, subscriptions: Record<string, { nl?: boolean }>, topic: string, own: boolean, group?: string): number[] | undefined {
  const ids = connection.subscriptionIds
  if (ids === undefined || ids.size === 0) return undefined
  let found: number[] | undefined
  const sharePrefix = group === undefined ? undefined : `$share/${group}/`
  for (const [filter, id] of ids) {
    const sub = subscriptions[filter]
    if (sub === undefined) continue
    if (sharePrefix === undefined) {
      if (filter.startsWith('$share/') || !topicMatches(filter, topic) || (own && sub.nl === true)) continue
    } else if (!filter.startsWith(sharePrefix) || !topicMatches(filter.slice(sharePrefix.length), topic)) {
      continue
    }
    if (found === undefined) found = [id]
    else if (!found.includes(id)) found.push(id)
  }
  return found
}

/** PUBLISH properties with these Subscription Identifiers added (a copy), or as they are when there are none. */
export function withSubscriptionIds (properties: Record<string, unknown> | undefined, ids: number[] | undefined): Record<string, unknown> | undefined {
  if (ids === undefined) return properties
  return { ...properties, subscriptionIdentifier: ids.length === 1 ? ids[0] : ids }
}
