import { mapping, type Field } from '../config/fields.js'
import { STRATEGIES, isStrategy, type Strategy } from './strategies.js'

export type GroupStrategies = Readonly<Record<string, Strategy>>

/**
 * sharedSubscriptions.groupStrategies: the strategy of particular share names, as a YAML mapping
 * (`orders: hash-topic`) or, from the environment and flags, `orders=hash-topic,billing=sticky`.
 */
export function groupStrategiesField (doc: string): Field<GroupStrategies> {
  return mapping<Strategy>(doc, {
    type: `mapping of share name to ${STRATEGIES.join(' | ')}`,
    pair: 'name=strategy',
    entry: (name, strategy) => {
      if (name === '' || /[/+#]/.test(name)) return { ok: false, problem: `${JSON.stringify(name)} is not a share name (non-empty, without "/", "+" or "#")` }
      if (!isStrategy(strategy)) return { ok: false, problem: `strategy of ${name} must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}` }
      return { ok: true, value: strategy }
    }
  })
}
