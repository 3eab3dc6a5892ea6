import { readFile, access } from 'node:fs/promises'
import { constants as fsConstants } from 'node:fs'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { CulexError } from '../errors.js'
import { isField, type Field, type Section } from './fields.js'
import { schema, type Config } from './schema.js'
import { unknownEnv, type UnknownEnv } from './env-names.js'

export type Origin = 'default' | 'file' | 'env' | 'flag'

export interface ConfigSources {
  /** Path of a YAML config file. */
  file?: string
  /** Environment variables; CULEX_* ones are read. */
  env?: Record<string, string | undefined>
  /** Values from command-line flags, by dotted key. */
  flags?: Record<string, unknown>
}

export interface LoadedConfig {
  config: Config
  origins: Record<string, Origin>
  /** CULEX_* variables that name no setting: ignored, for the caller to warn about. */
  unknownEnv: UnknownEnv[]
}

export interface SchemaEntry { key: string, path: readonly string[], field: Field<unknown>, env: string }

export const ENV_PREFIX = 'CULEX_'

/** listeners.mqtt.port → CULEX_LISTENERS_MQTT_PORT; sessions.maxQueuedMessages → CULEX_SESSIONS_MAX_QUEUED_MESSAGES */
export function envName (path: readonly string[]): string {
  return ENV_PREFIX + path.map(p => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')
}

export function schemaEntries (section: Section = schema, prefix: readonly string[] = []): SchemaEntry[] {
  const out: SchemaEntry[] = []
  for (const [name, node] of Object.entries(section)) {
    const path = [...prefix, name]
    if (isField(node)) out.push({ key: path.join('.'), path, field: node, env: envName(path) })
    else out.push(...schemaEntries(node, path))
  }
  return out
}

const entries = schemaEntries()
const byKey = new Map(entries.map(e => [e.key, e]))
const byEnv = new Map(entries.map(e => [e.env, e]))

interface Raw { value: unknown, origin: Origin, where: string }

export async function loadConfig (sources: ConfigSources = {}): Promise<LoadedConfig> {
  const problems: string[] = []
  const raw = new Map<string, Raw>()
  const unknown: UnknownEnv[] = []

  if (sources.file !== undefined) {
    const doc = await readConfigFile(sources.file)
    collectFile(doc, [], sources.file, raw, problems)
  }
  for (const [name, value] of Object.entries(sources.env ?? {})) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue
    const entry = byEnv.get(name)
    if (entry === undefined) unknown.push(unknownEnv(name, byEnv.keys()))
    else raw.set(entry.key, { value, origin: 'env', where: `environment ${name}` })
  }
  for (const [key, value] of Object.entries(sources.flags ?? {})) {
    if (value === undefined) continue
    if (!byKey.has(key)) throw new Error(`flag mapped to unknown config key ${key}`)
    raw.set(key, { value, origin: 'flag', where: 'command line' })
  }

  const flat: Record<string, unknown> = {}
  const origins: Record<string, Origin> = {}
  for (const entry of entries) {
    const given = raw.get(entry.key)
    if (given === undefined) {
      flat[entry.key] = entry.field.default
      origins[entry.key] = 'default'
      continue
    }
    const parsed = entry.field.parse(given.value)
    if (parsed.ok) {
      flat[entry.key] = parsed.value
      origins[entry.key] = given.origin
    } else {
      problems.push(`${entry.key}: ${parsed.problem} (from ${given.where})`)
    }
  }
  if (problems.length === 0) problems.push(...await crossCheck(flat, key => raw.get(key)?.where ?? 'default'))
  if (problems.length > 0) {
    throw new CulexError('ERR_CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'})`, { details: problems })
  }
  return { config: deepFreeze(nest(flat)) as Config, origins, unknownEnv: unknown }
}

async function readConfigFile (file: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new CulexError('ERR_CONFIG_FILE', `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
  }
  try {
    return parseYaml(text) ?? {}
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos !== undefined ? ` at line ${err.linePos[0].line}` : ''
    throw new CulexError('ERR_CONFIG_FILE', `config file ${file} is not valid YAML${where}: ${(err as Error).message.split('\n')[0]}`, { cause: err })
  }
}

function collectFile (node: unknown, path: string[], file: string, raw: Map<string, Raw>, problems: string[]): void {
  const here = path.join('.')
  // A section whose keys are all commented out parses as null.
  if (node === null) return
  if (node === null || typeof node !== 'object' || Array.isArray(node)) {
    problems.push(`${here === '' ? '(top level)' : here}: must be a mapping of settings (from ${file})`)
    return
  }
  for (const [name, value] of Object.entries(node)) {
    const childPath = [...path, name]
    const key = childPath.join('.')
    if (byKey.has(key)) raw.set(key, { value, origin: 'file', where: file })
    else if (entries.some(e => e.key.startsWith(key + '.'))) collectFile(value, childPath, file, raw, problems)
    else problems.push(`${key}: unknown setting (from ${file})`)
  }
}

/** Rules that involve more than one key, or the file system. */
async function crossCheck (flat: Record<string, unknown>, whereOf: (key: string) => string): Promise<string[]> {
  const from = (key: string): string => ` (from ${whereOf(key)})`
  const problems: string[] = []
  for (const name of ['mqtts', 'wss']) {
    const k = (leaf: string): string => `listeners.${name}.${leaf}`
    if (flat[k('enabled')] !== true) continue
    for (const leaf of ['certFile', 'keyFile']) {
      if (flat[k(leaf)] === '') problems.push(`${k(leaf)}: required when ${k('enabled')} is true${from(k('enabled'))}`)
    }
    if (flat[k('requireClientCert')] === true && flat[k('caFile')] === '') problems.push(`${k('caFile')}: required when ${k('requireClientCert')} is true${from(k('requireClientCert'))}`)
    for (const leaf of ['certFile', 'keyFile', 'caFile']) {
      const file = flat[k(leaf)] as string
      if (file !== '' && !await readable(file)) problems.push(`${k(leaf)}: cannot read file ${file}${from(k(leaf))}`)
    }
  }
  const ca = flat['cluster.redisTlsCaFile'] as string
  if (ca !== '') {
    if (!/^rediss:\/\//.test(flat['cluster.redisUrl'] as string)) problems.push(`cluster.redisTlsCaFile: needs a rediss:// cluster.redisUrl (TLS)${from('cluster.redisTlsCaFile')}`)
    else if (!await readable(ca)) problems.push(`cluster.redisTlsCaFile: cannot read file ${ca}${from('cluster.redisTlsCaFile')}`)
  }
  const bound = new Map<string, string>()
  for (const name of ['mqtt', 'mqtts', 'ws', 'wss']) {
    if (flat[`listeners.${name}.enabled`] !== true) continue
    const p = flat[`listeners.${name}.port`] as number
    if (p === 0) continue
    const other = bound.get(String(p))
    if (other !== undefined) problems.push(`listeners.${name}.port: ${p}${from(`listeners.${name}.port`)} is already used by listeners.${other}.port${from(`listeners.${other}.port`)}`)
    bound.set(String(p), name)
  }
  if (flat['admin.enabled'] === true && bound.has(String(flat['admin.port'])) && flat['admin.port'] !== 0) {
    const other = bound.get(String(flat['admin.port'])) ?? ''
    problems.push(`admin.port: ${String(flat['admin.port'])}${from('admin.port')} is already used by listeners.${other}.port${from(`listeners.${other}.port`)}`)
  }
  return problems
}

async function readable (file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.R_OK)
    return true
  } catch {
    return false
  }
}

function nest (flat: Record<string, unknown>): Record<string, unknown> {
  const root: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split('.')
    let node = root
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>
    node[parts[parts.length - 1]] = value
  }
  return root
}

function deepFreeze<T> (obj: T): T {
  if (obj !== null && typeof obj === 'object') {
    for (const v of Object.values(obj)) deepFreeze(v)
    Object.freeze(obj)
  }
  return obj
}
