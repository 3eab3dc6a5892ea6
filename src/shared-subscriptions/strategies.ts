/**
 * How a group picks the member for one message. Pure: the engine hands in the members that may take it, in join
 * order, each with its count of unacknowledged messages and whether it is at its in-flight cap.
 */
export const STRATEGIES = ['round-robin', 'random', 'least-inflight', 'sticky', 'hash-clientid', 'hash-topic'] as const
export type Strategy = typeof STRATEGIES[number]

export interface Candidate {
  readonly id: string
  /** Messages delivered to it and not acknowledged yet. */
  readonly inflight: number
  /** At its in-flight cap: it takes nothing more until it acknowledges something. */
  readonly full: boolean
}

export interface PickInput {
  topic: string
  /** Client id of the publisher (hash-clientid); undefined for the broker's own messages. */
  publisher: string | undefined
}

/**
 * One group's strategy and its state (the round-robin position, the sticky member). `undefined` means nobody can
 * take the message now: every candidate is full, or the one that must take it (sticky, hash) is full, so the
 * message waits rather than break the per-key order.
 */
export class Picker {
  #next = 0
  #sticky: string | undefined

  constructor (readonly strategy: Strategy, private readonly random: () => number = Math.random) {}

  pick<C extends Candidate> (candidates: readonly C[], input: PickInput): C | undefined {
    const n = candidates.length
    if (n === 0) return undefined
    switch (this.strategy) {
      case 'round-robin':
        return this.#roundRobin(candidates)
      case 'least-inflight':
        return this.#leastInflight(candidates)
      case 'random':
        return this.#random(candidates)
      case 'sticky': {
        const current = candidates.find(c => c.id === this.#sticky)
        if (current !== undefined) return current.full ? undefined : current
        const chosen = this.#random(candidates)
        this.#sticky = chosen?.id
        return chosen
      }
      case 'hash-clientid':
      case 'hash-topic': {
        const best = rendezvous(candidates, this.strategy === 'hash-topic' ? input.topic : input.publisher ?? '')
        return best.full ? undefined : best
      }
    }
  }

  #roundRobin<C extends Candidate> (candidates: readonly C[]): C | undefined {
    const n = candidates.length
    for (let k = 0; k < n; k++) {
      const i = (this.#next + k) % n
      if (!candidates[i].full) {
        this.#next = (i + 1) % n
        return candidates[i]
      }
    }
    return undefined
  }

  /** Fewest unacknowledged messages; ties go round-robin so equal members share the load evenly. */
  #leastInflight<C extends Candidate> (candidates: readonly C[]): C | undefined {
    const n = candidates.length
    let best = -1
    for (let k = 0; k < n; k++) {
      const i = (this.#next + k) % n
      const c = candidates[i]
      if (!c.full && (best < 0 || c.inflight < candidates[best].inflight)) best = i
    }
    if (best < 0) return undefined
    this.#next = (best + 1) % n
    return candidates[best]
  }

  #random<C extends Candidate> (candidates: readonly C[]): C | undefined {
    const open = candidates.filter(c => !c.full)
    return open.length === 0 ? undefined : open[Math.floor(this.random() * open.length)]
  }
}

/**
 * Rendezvous (highest random weight) hashing: each key goes to the member with the highest hash of (key, member).
 * A member joining or leaving moves only the keys it wins or held, so the rest keep their member and their order.
 */
export function rendezvous<C extends { id: string }> (candidates: readonly C[], key: string): C {
  const seed = fnv1a(key, 0x811c9dc5)
  let best = candidates[0]
  let bestScore = -1
  for (const c of candidates) {
    const score = mix(fnv1a(c.id, seed ^ 0x5bd1e995))
    if (score > bestScore || (score === bestScore && c.id < best.id)) {
      best = c
      bestScore = score
    }
  }
  return best
}

function fnv1a (s: string, seed: number): number {
  let h = seed >>> 0
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}

/** murmur3's finalizer: FNV alone leaves nearby ids (worker-1, worker-2) with correlated scores. */
function mix (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

export function isStrategy (value: unknown): value is Strategy {
  return typeof value === 'string' && (STRATEGIES as readonly string[]).includes(value)
}
