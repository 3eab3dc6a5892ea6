/**
 * The redelivery and queueing rules of shared subscriptions, as pure functions (unit-tested on their own).
 */

export interface QueueLimits {
  /** Messages waiting in one group's queue (in-flight ones are not counted); 0 = unlimited. */
  maxQueuedMessages: number
  /** Payload bytes of those messages; 0 = unlimited. */
  maxQueuedBytes: number
  overflowPolicy: 'dropOldest' | 'dropNewest'
}

export type Admission = { accept: true, evict: number } | { accept: false }

/**
 * Whether a message of `bytes` may join a queue holding `waiting` messages of `waitingBytes`, and how many of the
 * oldest waiting ones must go first (dropOldest). Like the session queues: a message larger than the byte limit
 * on its own is always refused. `sizes` gives the payload sizes of the waiting messages, oldest first.
 */
export function admit (limits: QueueLimits, waiting: number, waitingBytes: number, bytes: number, sizes: () => Iterable<number>): Admission {
  const { maxQueuedMessages: maxMessages, maxQueuedBytes: maxBytes } = limits
  const fits = (count: number, size: number): boolean =>
    (maxMessages <= 0 || count + 1 <= maxMessages) && (maxBytes <= 0 || size + bytes <= maxBytes)
  if (fits(waiting, waitingBytes)) return { accept: true, evict: 0 }
  if (limits.overflowPolicy === 'dropNewest' || (maxBytes > 0 && bytes > maxBytes)) return { accept: false }
  let count = waiting
  let size = waitingBytes
  let evict = 0
  for (const s of sizes()) {
    evict++
    count--
    size -= s
    if (fits(count, size)) return { accept: true, evict }
  }
  return { accept: false }
}

export type LossVerdict = 'redeliver' | 'dead-letter'

/**
 * A member lost a message (its connection closed, or it did not acknowledge in time) after `attempts` deliveries.
 * With `maxDeliveries` 0 a message is redelivered for ever.
 */
export function afterLoss (attempts: number, maxDeliveries: number): LossVerdict {
  return maxDeliveries > 0 && attempts >= maxDeliveries ? 'dead-letter' : 'redeliver'
}

/** Delivered QoS: min(publish QoS, the member's granted QoS) [MQTT-3.8.4-6]. */
export function deliveredQos (publishQos: number, grantedQos: number): 0 | 1 | 2 {
  return Math.min(publishQos, grantedQos) as 0 | 1 | 2
}

/** A member at its cap of unacknowledged messages is skipped for QoS 1 and 2 deliveries; QoS 0 needs no slot. */
export function isFull (inflight: number, cap: number, qos: number): boolean {
  return qos > 0 && cap > 0 && inflight >= cap
}

/** How often the ack-timeout sweep runs: often enough to be within a quarter of the timeout, at most every 50 ms. */
export function sweepIntervalMs (ackTimeoutMs: number): number {
  return Math.max(50, Math.min(1000, Math.floor(ackTimeoutMs / 4)))
}
