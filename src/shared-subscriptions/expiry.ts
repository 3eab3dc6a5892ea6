import { countedDown, messageExpiryMs } from '../store/queue-limits.js'
import type { Entry } from './group.js'

/**
 * MQTT 5 Message Expiry Interval in a shared group, as in a session queue (store/queue-limits.ts): counted from the
 * message's arrival at the group (kept in its durable queue), a message past it is never sent.
 */
export function isExpired<H> (entry: Entry<H>, now: number): boolean {
  if (entry.properties === undefined) return false
  const expiryMs = messageExpiryMs({ properties: entry.properties })
  return expiryMs !== undefined && now - entry.enqueuedAt > expiryMs
}

/** The properties a delivery carries: the Message Expiry Interval less the whole seconds the message waited. */
export function withTimeLeft<H> (entry: Entry<H>, now: number): Record<string, unknown> | undefined {
  if (messageExpiryMs({ properties: entry.properties }) === undefined) return entry.properties
  return countedDown({ properties: entry.properties }, entry.enqueuedAt, now).properties as Record<string, unknown>
}
