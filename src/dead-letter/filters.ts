import { topicMatches } from '../protocol/topic.js'
import type { StoredDeadLetter } from '../store/dead-letters.js'

/** Which dead letters a list, replay or purge takes (admin API query, `culex dlq` flags). */
export interface Filters {
  reason?: string
  /** An MQTT topic filter matched against the original topic. */
  topic?: string
  clientId?: string
  /** Epoch ms: rejected at or after. */
  since?: number
}

export function matchesFilters (entry: StoredDeadLetter, f: Filters): boolean {
  if (f.reason !== undefined && entry.reason !== f.reason) return false
  if (f.clientId !== undefined && entry.clientId !== f.clientId) return false
  if (f.since !== undefined && entry.rejectedAt < f.since) return false
  if (f.topic !== undefined && !topicMatches(f.topic, entry.topic)) return false
  return true
}

/** `--since`: an ISO 8601 time, epoch milliseconds, or an age such as 30s, 15m, 2h, 7d. Undefined if unreadable. */
export function parseSince (text: string, now = Date.now()): number | undefined {
  const age = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim())
  if (age !== null) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 'ms' | 's' | 'm' | 'h' | 'd']
    return now - Number(age[1]) * unit
  }
  if (/^\d+$/.test(text.trim())) return Number(text)
  const t = Date.parse(text)
  return Number.isNaN(t) ? undefined : t
}
