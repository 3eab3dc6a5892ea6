import { parse as parseYaml } from 'yaml'
import type { Acl, AclRule } from './acl.js'
import { filterProblem } from '../protocol/topic.js'

/**
 * Reads the ACL file in either of its two forms. Both share one rule grammar:
 *
 *   <access> <topic filter>      access: read | write | readwrite | deny | deny read | deny write | deny readwrite
 *
 * The Mosquitto text form (any file not ending in .yaml/.yml):
 *
 *   topic read public/#          # topic lines before the first "user" line apply to anonymous clients
 *   user alice
 *   topic readwrite home/alice/#
 *   topic deny home/alice/keys
 *   pattern readwrite devices/%c/#   # pattern lines apply to every client, wherever they are
 *
 * The YAML form:
 *
 *   anonymous: [ "read public/#" ]
 *   users:
 *     alice: [ "readwrite home/alice/#", "deny home/alice/keys" ]
 *   patterns: [ "readwrite devices/%c/#" ]
 *
 * As in Mosquitto, a topic line without an access word means readwrite, and `deny` alone denies both directions.
 */

export type AclParseResult = { ok: true, acl: Acl } | { ok: false, problems: string[] }

export function parseAclFile (text: string, fileName: string): AclParseResult {
  return /\.ya?ml$/i.test(fileName) ? parseYamlAcl(text) : parseTextAcl(text)
}

/** One rule from its text ("readwrite a/#", "deny read a/b", "a/b"); a problem text when it is not valid. */
export function parseRule (text: string): AclRule | string {
  const words = text.trim().split(/\s+/)
  let effect: AclRule['effect'] = 'allow'
  let access = 'readwrite'
  let rest = text.trim()
  const take = (): void => {
    rest = rest.slice(words[0].length).trimStart()
    words.shift()
  }
  // An access word is always taken as one, as Mosquitto does: "readwrite" alone is a rule without a filter, not a
  // rule for the topic "readwrite".
  if (words[0] === 'deny') {
    effect = 'deny'
    take()
  }
  if (isAccess(words[0])) {
    access = words[0]
    take()
  }
  if (rest === '') return `the rule ${JSON.stringify(text.trim())} has no topic filter`
  const problem = filterProblem(rest)
  if (problem !== undefined) return `${problem} (${JSON.stringify(rest)})`
  return { effect, read: access !== 'write', write: access !== 'read', filter: rest }
}

function isAccess (word: string): boolean {
  return word === 'read' || word === 'write' || word === 'readwrite'
}

function parseTextAcl (text: string): AclParseResult {
  const anonymous: AclRule[] = []
  const users = new Map<string, AclRule[]>()
  const patterns: AclRule[] = []
  const problems: string[] = []
  let current: AclRule[] = anonymous
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const where = `line ${i + 1}`
    const space = line.search(/\s/)
    const keyword = space === -1 ? line : line.slice(0, space)
    const arg = space === -1 ? '' : line.slice(space).trim()
    if (keyword === 'user') {
      if (arg === '') return problems.push(`${where}: "user" needs a user name`)
      current = users.get(arg) ?? []
      users.set(arg, current)
    } else if (keyword === 'topic' || keyword === 'pattern') {
      const rule = parseRule(arg)
      if (typeof rule === 'string') return problems.push(`${where}: ${rule}`)
      if (keyword === 'topic') current.push(rule)
      else patterns.push(rule)
    } else {
      problems.push(`${where}: unknown keyword ${JSON.stringify(keyword)} (expected user, topic or pattern)`)
    }
  })
  return problems.length === 0 ? { ok: true, acl: { anonymous, users, patterns } } : { ok: false, problems }
}

function parseYamlAcl (text: string): AclParseResult {
  let doc: unknown
  try {
    doc = parseYaml(text) ?? {}
  } catch (err) {
    return { ok: false, problems: [`not valid YAML: ${(err as Error).message.split('\n')[0]}`] }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { ok: false, problems: ['the file must be a mapping with anonymous, users and patterns'] }
  const problems: string[] = []
  const rules = (value: unknown, where: string): AclRule[] => {
    if (value === null || value === undefined) return []
    if (!Array.isArray(value)) {
      problems.push(`${where}: must be a list of rules such as "readwrite a/#"`)
      return []
    }
    const out: AclRule[] = []
    value.forEach((item, i) => {
      const rule = typeof item === 'string' ? parseRule(item) : 'each rule must be a string such as "readwrite a/#"'
      if (typeof rule === 'string') problems.push(`${where}[${i}]: ${rule}`)
      else out.push(rule)
    })
    return out
  }
  const users = new Map<string, AclRule[]>()
  let anonymous: AclRule[] = []
  let patterns: AclRule[] = []
  for (const [key, value] of Object.entries(doc)) {
    if (key === 'anonymous') anonymous = rules(value, 'anonymous')
    else if (key === 'patterns') patterns = rules(value, 'patterns')
    else if (key === 'users') {
      if (value === null || value === undefined) continue
      if (typeof value !== 'object' || Array.isArray(value)) {
        problems.push('users: must map each user name to a list of rules')
        continue
      }
      for (const [user, list] of Object.entries(value as Record<string, unknown>)) users.set(user, rules(list, `users.${user}`))
    } else {
      problems.push(`${key}: unknown section (expected anonymous, users or patterns)`)
    }
  }
  return problems.length === 0 ? { ok: true, acl: { anonymous, users, patterns } } : { ok: false, problems }
}
