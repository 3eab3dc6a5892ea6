import type { Field } from '../config/fields.js'
import { STRATEGIES, isStrategy, type Strategy } from './strategies.js'

export type GroupStrategies = Readonly<Record<string, Strategy>>

/**
 * sharedSubscriptions.groupStrategies: the strategy of particular share names, as a YAML mapping
 * (`orders: hash-topic`) or, from the environment and flags, `orders=hash-topic,billing=sticky`.
 */
export function groupStrategiesField (doc: string): Field<GroupStrategies> {
  return {
    kind: 'field',
    type: `mapping of share name to ${STRATEGIES.join(' | ')}`,
    default: {},
    doc,
    parse (raw) {
      let pairs: Array<[string, unknown]>
      if (typeof raw === 'string') {
        pairs = []
        for (const part of raw.split(',').map(p => p.trim()).filter(p => p !== '')) {
          const eq = part.indexOf('=')
          if (eq < 0) return { ok: false, problem: `must be name=strategy pairs separated by commas, got ${JSON.stringify(part)}` }
          pairs.push([part.slice(0, eq).trim(), part.slice(eq + 1).trim()])
        }
      } else if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
        pairs = Object.entries(raw)
      } else {
        return { ok: false, problem: 'must be a mapping of share name to strategy' }
      }
      const out: Record<string, Strategy> = {}
      for (const [name, strategy] of pairs) {
        if (name === '' || /[/+#]/.test(name)) return { ok: false, problem: `${JSON.stringify(name)} is not a share name (non-empty, without "/", "+" or "#")` }
        if (!isStrategy(strategy)) return { ok: false, problem: `strategy of ${name} must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}` }
        out[name] = strategy
      }
      return { ok: true, value: out }
    }
  }
}
