import { decimal, int, mapping, type Field } from '../config/fields.js'
import { STRATEGIES, isStrategy, type Strategy } from './strategies.js'
import type { Backoff } from './backoff.js'

export type GroupStrategies = Readonly<Record<string, Strategy>>
export type GroupBackoffs = Readonly<Record<string, Partial<Backoff>>>

function shareNameProblem (name: string): string | undefined {
  return name === '' || /[/+#]/.test(name) ? `${JSON.stringify(name)} is not a share name (non-empty, without "/", "+" or "#")` : undefined
}

/**
 * sharedSubscriptions.groupStrategies: the strategy of particular share names, as a YAML mapping
 * (`orders: hash-topic`) or, from the environment and flags, `orders=hash-topic,billing=sticky`.
 */
export function groupStrategiesField (doc: string): Field<GroupStrategies> {
  return mapping<Strategy>(doc, {
    type: `mapping of share name to ${STRATEGIES.join(' | ')}`,
    pair: 'name=strategy',
    entry: (name, strategy) => {
      const problem = shareNameProblem(name)
      if (problem !== undefined) return { ok: false, problem }
      if (!isStrategy(strategy)) return { ok: false, problem: `strategy of ${name} must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}` }
      return { ok: true, value: strategy }
    }
  })
}

/** sharedSubscriptions.redeliveryBackoff: the wait before each retry after an ack timeout. */
export function redeliveryBackoffSection () {
  return {
    initialMs: int(1000, 'Wait before the second delivery of a message whose delivery timed out (ackTimeoutMs); 0 = redeliver at once.'),
    multiplier: decimal(2, 'Each further wait is the previous one times this (initialMs × multiplier^(attempt−1)).', { min: 1, max: 100 }),
    maxMs: int(60_000, 'Longest wait between two deliveries of one message.'),
    jitter: decimal(0.2, 'Each wait is varied at random by up to ± this fraction of it, so retries of many messages spread out.', { min: 0, max: 1 })
  }
}

const BACKOFF_KEYS = ['initialMs', 'multiplier', 'maxMs', 'jitter'] as const
const backoffFields = redeliveryBackoffSection()

/**
 * sharedSubscriptions.groupRedeliveryBackoff: the backoff of particular share names, each key it leaves out taken
 * from redeliveryBackoff. YAML `{orders: {initialMs: 500, maxMs: 10000}}`; from the environment and flags the four
 * numbers in the order initialMs:multiplier:maxMs:jitter, any of them empty: `orders=500::10000:,billing=100:3`.
 */
export function groupBackoffsField (doc: string): Field<GroupBackoffs> {
  return mapping<Partial<Backoff>>(doc, {
    type: 'mapping of share name to {initialMs, multiplier, maxMs, jitter} (or initialMs:multiplier:maxMs:jitter)',
    pair: 'name=initialMs:multiplier:maxMs:jitter',
    entry: (name, value) => {
      const problem = shareNameProblem(name)
      if (problem !== undefined) return { ok: false, problem }
      let given: Record<string, unknown>
      if (typeof value === 'string' || typeof value === 'number') {
        const parts = String(value).split(':')
        if (parts.length > BACKOFF_KEYS.length) return { ok: false, problem: `backoff of ${name} must be initialMs:multiplier:maxMs:jitter, got ${JSON.stringify(value)}` }
        given = {}
        parts.forEach((p, i) => { if (p.trim() !== '') given[BACKOFF_KEYS[i]] = p })
      } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        given = value as Record<string, unknown>
      } else {
        return { ok: false, problem: `backoff of ${name} must be a mapping of initialMs, multiplier, maxMs, jitter` }
      }
      const out: Partial<Backoff> = {}
      for (const [key, raw] of Object.entries(given)) {
        if (!(BACKOFF_KEYS as readonly string[]).includes(key)) return { ok: false, problem: `backoff of ${name}: unknown key ${key} (initialMs, multiplier, maxMs, jitter)` }
        const parsed = backoffFields[key as keyof Backoff].parse(raw)
        if (!parsed.ok) return { ok: false, problem: `backoff of ${name}: ${key} ${parsed.problem}` }
        out[key as keyof Backoff] = parsed.value
      }
      return { ok: true, value: out }
    }
  })
}
