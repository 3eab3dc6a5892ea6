import { readFileSync } from 'node:fs'
import { Validator } from '@cfworker/json-schema'
import { mapping, type Field } from '../config/fields.js'
import { filterProblem, topicMatches } from '../protocol/topic.js'

export const PAYLOAD_RULES = ['json', 'utf8', 'schema:<file>'] as const
/** `json`: parses as JSON; `utf8`: valid UTF-8; `schema:<file>`: JSON valid against the JSON Schema in that file. */
export type PayloadRule = 'json' | 'utf8' | `schema:${string}`
export type PayloadRules = Readonly<Record<string, PayloadRule>>

/** Reads and checks a schema file: undefined when usable, else why not. */
function schemaFileProblem (file: string): string | undefined {
  let schema: unknown
  try {
    schema = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    return `schema file ${file} cannot be read as JSON: ${(err as Error).message}`
  }
  if (typeof schema !== 'boolean' && (schema === null || typeof schema !== 'object' || Array.isArray(schema))) return `schema file ${file} must hold a JSON Schema object`
  try {
    new Validator(schema as object) // eslint-disable-line no-new
  } catch (err) {
    return `schema file ${file} is not a usable JSON Schema: ${(err as Error).message}`
  }
  return undefined
}

function isRule (rule: unknown): rule is PayloadRule {
  return rule === 'json' || rule === 'utf8' || (typeof rule === 'string' && rule.startsWith('schema:') && rule.length > 'schema:'.length)
}


/**
 * deadLetter.payloadRules: topic filter → rule, as a YAML mapping (`orders/#: json`) or, from the environment and
 * flags, `orders/#=json,logs/+=utf8`.
 */
export function payloadRulesField (doc: string): Field<PayloadRules> {
  return mapping<PayloadRule>(doc, {
    type: `mapping of topic filter to ${PAYLOAD_RULES.join(' | ')}`,
    pair: 'filter=rule',
    splitAtLast: true,
    entry: (filter, rule) => {
      const problem = filterProblem(filter)
      if (problem !== undefined) return { ok: false, problem: `filter ${JSON.stringify(filter)} ${problem}` }
      if (!isRule(rule)) return { ok: false, problem: `rule of ${filter} must be one of ${PAYLOAD_RULES.join(', ')}, got ${JSON.stringify(rule)}` }
      if (rule.startsWith('schema:')) {
        const bad = schemaFileProblem(rule.slice('schema:'.length))
        if (bad !== undefined) return { ok: false, problem: `rule of ${filter}: ${bad}` }
      }
      return { ok: true, value: rule }
    }
  })
}

const decoder = new TextDecoder('utf-8', { fatal: true })

export type PayloadChecker = (topic: string, payload: Buffer) => string | undefined

/**
 * Compiles the rules once (schema files are read now; one that has become unreadable since the configuration was
 * checked refuses every payload of its filter, with the reason in the detail). The checker returns the first rule
 * of a matching filter that the payload breaks, as a human-readable text, or undefined.
 */
export function payloadChecker (rules: PayloadRules): PayloadChecker {
  const compiled = Object.entries(rules).map(([filter, rule]) => {
    let validate: ((value: unknown) => string | undefined) | undefined
    if (rule.startsWith('schema:')) {
      const file = rule.slice('schema:'.length)
      const problem = schemaFileProblem(file)
      if (problem !== undefined) {
        validate = () => problem
      } else {
        const validator = new Validator(JSON.parse(readFileSync(file, 'utf8')) as object, '2020-12', false)
        validate = value => {
          const result = validator.validate(value)
          if (result.valid) return undefined
          const deepest = result.errors[result.errors.length - 1]
          return `${deepest.instanceLocation}: ${deepest.error}`
        }
      }
    }
    return { filter, rule, validate }
  })
  return (topic, payload) => {
    for (const { filter, rule, validate } of compiled) {
      if (!topicMatches(filter, topic)) continue
      let text: string
      try {
        text = decoder.decode(payload)
      } catch {
        return `payload rule ${filter}: ${rule}: the payload is not valid UTF-8`
      }
      if (rule === 'utf8') continue
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch (err) {
        return `payload rule ${filter}: ${rule}: the payload is not JSON (${(err as Error).message})`
      }
      const problem = validate?.(value)
      if (problem !== undefined) return `payload rule ${filter}: ${rule}: ${problem}`
    }
    return undefined
  }
}

/** One-off check (tests, tools): compiles `rules` and checks one payload. */
export function payloadProblem (rules: PayloadRules, topic: string, payload: Buffer): string | undefined {
  return payloadChecker(rules)(topic, payload)
}
