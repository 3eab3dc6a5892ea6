import type { StoredDeadLetter } from '../store/dead-letters.js'
import { envelopeProperties, type EnvelopeProperties } from './envelope-properties.js'

export const DLQ_PREFIX = '$DLQ/'

/** The JSON published on `$DLQ/<reason>/<topic>`; also what the admin API and `culex dlq show` return. */
export interface Envelope {
  id: string
  reason: string
  detail: string
  topic: string
  qos: number
  retain: boolean
  payload: string
  payloadEncoding: 'base64'
  clientId: string | null
  username: string | null
  target: string | null
  attempts: number
  /** When each delivery went out (ISO 8601), for a shared subscription's max-deliveries; empty otherwise. */
  attemptTimes: string[]
  firstRejectedAt: string
  rejectedAt: string
  brokerId: string | null
  /** The message's MQTT 5 properties (envelope-properties.ts); null when it had none. */
  properties: EnvelopeProperties | null
}

/** Never dead-lettered: the dead-letter topic itself (no loops). */
export function isDeadLetterTopic (topic: string): boolean {
  return topic === '$DLQ' || topic.startsWith(DLQ_PREFIX)
}

/** `$DLQ/<reason>/<topic>`, cut to the topic-level and topic-length limits by dropping trailing levels. */
export function envelopeTopic (reason: string, topic: string, maxLevels: number, maxBytes: number): string {
  const head = DLQ_PREFIX + reason
  let levels = topic.split('/').slice(0, Math.max(0, maxLevels - 2))
  let out = levels.length === 0 ? head : `${head}/${levels.join('/')}`
  while (Buffer.byteLength(out) > maxBytes && levels.length > 0) {
    levels = levels.slice(0, -1)
    out = levels.length === 0 ? head : `${head}/${levels.join('/')}`
  }
  return out
}

export function toEnvelope (entry: StoredDeadLetter, payload: Buffer): Envelope {
  return {
    id: entry.id,
    reason: entry.reason,
    detail: entry.detail,
    topic: entry.topic,
    qos: entry.qos,
    retain: entry.retain,
    payload: payload.toString('base64'),
    payloadEncoding: 'base64',
    clientId: entry.clientId ?? null,
    username: entry.username ?? null,
    target: entry.target ?? null,
    attempts: entry.attempts,
    attemptTimes: (entry.attemptTimes ?? []).map(t => new Date(t).toISOString()),
    firstRejectedAt: new Date(entry.firstRejectedAt).toISOString(),
    rejectedAt: new Date(entry.rejectedAt).toISOString(),
    brokerId: entry.brokerId ?? null,
    properties: envelopeProperties(entry.properties)
  }
}
