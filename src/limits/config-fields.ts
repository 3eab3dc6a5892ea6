import type { Field } from '../config/fields.js'

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
