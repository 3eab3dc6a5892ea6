/**
 * Field builders for the config schema. A field knows its type, default and documentation, and validates a raw
 * value from any source (file, environment, flag) into its typed form or a human-readable problem.
 */
export interface Field<T> {
  readonly kind: 'field'
  readonly type: string
  readonly default: T
  readonly doc: string
  /** Turns a raw value into T, or returns a problem text ("must be …"). Strings come from env and flags. */
  parse: (raw: unknown) => { ok: true, value: T } | { ok: false, problem: string }
}

type Parsed<T> = { ok: true, value: T } | { ok: false, problem: string }
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value })
const bad = (problem: string): Parsed<never> => ({ ok: false, problem })

/** `orZero`: 0 is accepted besides min..max (a setting that 0 turns off, where small values make no sense). */
export function int (def: number, doc: string, range: { min?: number, max?: number, orZero?: boolean } = {}): Field<number> {
  const min = range.min ?? 0
  const max = range.max ?? Number.MAX_SAFE_INTEGER
  const orZero = range.orZero === true && min > 0
  const span = `${min}..${max === Number.MAX_SAFE_INTEGER ? '' : max}`
  return {
    kind: 'field',
    type: orZero ? `0 or integer ${span}` : `integer ${span}`.trim(),
    default: def,
    doc,
    parse (raw) {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw
      if (typeof n !== 'number' || !Number.isInteger(n)) return bad(`must be an integer, got ${describe(raw)}`)
      if (orZero && n === 0) return ok(n)
      if (orZero && max === Number.MAX_SAFE_INTEGER && n < min) return bad(`must be 0 or at least ${min}, got ${n}`)
      if (n < min || n > max) return bad(`must be ${orZero ? '0 or ' : ''}between ${min} and ${max}, got ${n}`)
      return ok(n)
    }
  }
}

/** A number that may have a fraction (a multiplier, a ratio), within min..max. */
export function decimal (def: number, doc: string, range: { min: number, max: number }): Field<number> {
  return {
    kind: 'field',
    type: `number ${range.min}..${range.max}`,
    default: def,
    doc,
    parse (raw) {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw
      if (typeof n !== 'number' || !Number.isFinite(n)) return bad(`must be a number, got ${describe(raw)}`)
      if (n < range.min || n > range.max) return bad(`must be between ${range.min} and ${range.max}, got ${n}`)
      return ok(n)
    }
  }
}

export function port (def: number, doc: string): Field<number> {
  const f = int(def, doc, { min: 0, max: 65535 })
  return { ...f, type: 'port (0 = any free port)' }
}

export function bool (def: boolean, doc: string): Field<boolean> {
  return {
    kind: 'field',
    type: 'boolean',
    default: def,
    doc,
    parse (raw) {
      if (typeof raw === 'boolean') return ok(raw)
      if (raw === 'true' || raw === '1' || raw === 'yes') return ok(true)
      if (raw === 'false' || raw === '0' || raw === 'no') return ok(false)
      return bad(`must be true or false, got ${describe(raw)}`)
    }
  }
}

export function str (def: string, doc: string, opts: { nonEmpty?: boolean, pattern?: RegExp, patternDoc?: string } = {}): Field<string> {
  return {
    kind: 'field',
    type: 'string',
    default: def,
    doc,
    parse (raw) {
      if (typeof raw === 'number') raw = String(raw)
      if (typeof raw !== 'string') return bad(`must be a string, got ${describe(raw)}`)
      if (opts.nonEmpty === true && raw === '') return bad('must not be empty')
      if (opts.pattern !== undefined && raw !== '' && !opts.pattern.test(raw)) return bad(`must be ${opts.patternDoc ?? opts.pattern.source}, got ${JSON.stringify(raw)}`)
      return ok(raw)
    }
  }
}

export function oneOf<const V extends string> (def: V, values: readonly V[], doc: string): Field<V> {
  return {
    kind: 'field',
    type: values.join(' | '),
    default: def,
    doc,
    parse (raw) {
      if (typeof raw === 'string' && (values as readonly string[]).includes(raw)) return ok(raw as V)
      return bad(`must be one of ${values.join(', ')}, got ${describe(raw)}`)
    }
  }
}

/**
 * A mapping from names to values: a YAML mapping in the file, `key=value,key=value` from the environment and flags.
 * `entry` checks one pair and returns the value, or a problem text.
 */
export function mapping<V> (doc: string, opts: {
  type: string
  /** What a pair is, for messages: "filter=rule". */
  pair: string
  entry: (key: string, value: unknown) => { ok: true, value: V } | { ok: false, problem: string }
  /** Split a string pair at its last "=" (keys that may contain "="). */
  splitAtLast?: boolean
}): Field<Readonly<Record<string, V>>> {
  return {
    kind: 'field',
    type: opts.type,
    default: {},
    doc,
    parse (raw) {
      let pairs: Array<[string, unknown]>
      if (typeof raw === 'string') {
        pairs = []
        for (const part of raw.split(',').map(p => p.trim()).filter(p => p !== '')) {
          const eq = opts.splitAtLast === true ? part.lastIndexOf('=') : part.indexOf('=')
          if (eq < 0) return bad(`must be ${opts.pair} pairs separated by commas, got ${JSON.stringify(part)}`)
          pairs.push([part.slice(0, eq).trim(), part.slice(eq + 1).trim()])
        }
      } else if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
        pairs = Object.entries(raw)
      } else {
        return bad(`must be a mapping (${opts.pair})`)
      }
      const out: Record<string, V> = {}
      for (const [key, value] of pairs) {
        const checked = opts.entry(key, value)
        if (!checked.ok) return checked
        out[key] = checked.value
      }
      return ok(out)
    }
  }
}

function describe (raw: unknown): string {
  if (raw === null) return 'null'
  if (Array.isArray(raw)) return 'a list'
  if (typeof raw === 'object') return 'a mapping'
  return typeof raw === 'string' ? JSON.stringify(raw) : String(raw)
}

export interface Section { readonly [key: string]: Field<unknown> | Section }

export type ConfigOf<S> = {
  readonly [K in keyof S]: S[K] extends Field<infer T> ? T : ConfigOf<S[K]>
}

export function isField (x: Field<unknown> | Section): x is Field<unknown> {
  return (x as Field<unknown>).kind === 'field'
}
