import { decodeRecord } from './codec.js'
import { countedDown, messageExpiryMs } from './queue-limits.js'

/**
 * A stored retained message as a SUBSCRIBE sends it. One with an MQTT 5 Message Expiry Interval is never sent once it
 * has passed [MQTT-3.3.2-5]: `expired` (the store removes it and reports it, dead-lettered as `expired`); before
 * that it goes out with the interval left [MQTT-3.3.2-6]. The interval counts from the arrival time stored with the
 * record (meta `t`); a record stored without one does not expire. Throws on a value that does not decode.
 */
export function readRetained (value: Buffer, now: number): { fields: Record<string, unknown>, expired: boolean } {
  const record = decodeRecord(value)
  const fields = record.fields
  const storedAt = typeof record.meta?.t === 'number' ? record.meta.t : 0
  const expiryMs = messageExpiryMs(fields)
  if (expiryMs === undefined || storedAt === 0) return { fields, expired: false }
  if (now - storedAt > expiryMs) return { fields, expired: true }
  return { fields: countedDown(fields, storedAt, now), expired: false }
}
