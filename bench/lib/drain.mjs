// Waiting for deliveries to finish and judging what never arrived. Every generator scenario ends with a drain, and
// the rule "missing at the drain cap is pending, not lost" must be the same for all of them.
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Polls every 10 ms until done() or until progress() has not changed for idleMs, or maxMs passed.
 * Returns true when done; false when progress stopped; 'cap' when maxMs passed while progress was still being made.
 */
export async function settle ({ done, progress, idleMs = 3000, maxMs = 60000 }) {
  const start = performance.now()
  let last = progress()
  let lastChange = start
  for (;;) {
    if (done()) return true
    const now = performance.now()
    const p = progress()
    if (p !== last) { last = p; lastChange = now }
    if (now - lastChange >= idleMs) return false
    if (now - start >= maxMs) return 'cap'
    await sleep(10)
  }
}

/** Drain after the measured phase of fan-in / fan-out: at most 20 s, then what is still arriving is pending. */
export const DRAIN_CAP_MS = 20000

/**
 * Loss per message: a message counts as lost for a receiver when it was acknowledged to its publisher (QoS > 0)
 * or sent (QoS 0) and the receiver never got it. `recvSets[r][pubIndex]` is receiver r's SeqSet for a publisher.
 */
export function lossOf (pubs, recvSets, qos, capped = false) {
  let lost = 0
  let unacked = 0
  for (const p of pubs) {
    for (let seq = 0; seq < p.sent; seq++) {
      const counted = qos === 0 || p.acked.has(seq)
      if (!counted) { unacked++; continue }
      for (const r of recvSets) if (!r[p.index].has(seq)) lost++
    }
  }
  // stopped by the drain cap while deliveries were still arriving: the missing ones are pending, not lost
  return capped ? { lost: 0, pending: lost, unacked } : { lost, pending: 0, unacked }
}
