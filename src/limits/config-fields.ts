import { mapping, type Field } from '../config/fields.js'
import { filterProblem } from '../protocol/topic.js'

/** A config string that must compile as a JavaScript regular expression ("" = no pattern). */
export function regexField (def: string, doc: string): Field<string> {
  return {
    kind: 'field',
    type: 'regular expression',
    default: def,
    doc,
    parse (raw) {
      if (typeof raw !== 'string') return { ok: false, problem: `must be a regular expression in a string, got ${typeof raw}` }
      try {
        if (raw !== '') new RegExp(raw, 'u') // eslint-disable-line no-new
      } catch (err) {
        return { ok: false, problem: `is not a valid regular expression: ${(err as Error).message}` }
      }
      return { ok: true, value: raw }
    }
  }
}

/** limits.topicMaxPayloadBytes: topic filter → the largest payload, in bytes, published to topics it matches. */
export function payloadLimitsField (doc: string): Field<Readonly<Record<string, number>>> {
  return mapping<number>(doc, {
    type: 'mapping of topic filter to bytes',
    pair: 'filter=bytes',
    splitAtLast: true,
    entry: (filter, raw) => {
      const problem = filterProblem(filter)
      if (problem !== undefined) return { ok: false, problem: `filter ${JSON.stringify(filter)} ${problem}` }
      const bytes = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw
      if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 0) return { ok: false, problem: `limit of ${filter} must be a whole number of bytes, got ${JSON.stringify(raw)}` }
      return { ok: true, value: bytes }
    }
  })
}
