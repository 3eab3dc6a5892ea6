import type { Field } from '../config/fields.js'
import type { AnonymousSetting } from './anonymous.js'

/** listeners.<name>.allowAnonymous: auto, true or false (YAML booleans and the strings from env and flags). */
export function anonymousField (doc: string): Field<AnonymousSetting> {
  return {
    kind: 'field',
    type: 'auto | true | false',
    default: 'auto',
    doc,
    parse (raw) {
      if (raw === 'auto') return { ok: true, value: 'auto' }
      if (raw === true || raw === 'true' || raw === 'yes' || raw === '1') return { ok: true, value: true }
      if (raw === false || raw === 'false' || raw === 'no' || raw === '0') return { ok: true, value: false }
      return { ok: false, problem: `must be auto, true or false, got ${JSON.stringify(raw)}` }
    }
  }
}
