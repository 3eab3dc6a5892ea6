import { parseArgs } from 'node:util'
import { filtersOf, row } from '../dead-letter/routes.js'
import { matchesFilters, type Filters } from '../dead-letter/filters.js'
import { toEnvelope } from '../dead-letter/envelope.js'
import type { ReplayResult } from '../dead-letter/service.js'
import { loadConfig } from '../config/load.js'
import { describeUnknownEnv } from '../config/env-names.js'
import { CulexError, exitCodes } from '../errors.js'
import { openRedisStore, redisConnectOptions, type CulexStore } from '../store/index.js'
import type { Config } from '../config/schema.js'
import { NO_LIMITS, openDataDir, quietLogger } from './data-dir.js'
import { redisTarget } from './redis-target.js'

export const dlqHelp = `culex dlq list|show|replay|purge ...    inspect, replay and purge dead letters ($DLQ, docs/dead-letter.md)

  culex dlq list [--reason r] [--topic filter] [--since t] [--client id] [--limit n] [--json]
  culex dlq show <id>
  culex dlq replay <id> | --all [--reason r] [--topic filter] [--since t] [--client id]
  culex dlq purge <id> | --all [--reason r] [--topic filter] [--since t] [--client id]

  Talks to the running broker's admin API: --admin-url, or else admin.host and admin.port of the configuration
  (-c/--config <file> and CULEX_* variables, as for culex start; default http://127.0.0.1:18083). The token is
  --token, or else admin.authToken (CULEX_ADMIN_AUTH_TOKEN). When nothing listens there, list, show and purge open
  the data directory directly (--data-dir, or else dataDir of the configuration; default ./data) and refuse one
  that holds no store; in cluster mode (cluster.redisUrl, CULEX_CLUSTER_REDIS_URL) they read the cluster's Redis
  instead. --redis-url <url> reads Redis without asking a node: every node's dead letters, where a node's admin
  API lists those it wrote or loaded at its start. Replay needs a running broker (a node's admin API). --since takes an ISO 8601 time, epoch milliseconds or an age
  such as 30m, 2h, 7d. --all with filters means every dead letter that matches them.
  Exit codes: 0 done, 1 not found, the broker refused, or a replayed message was dead-lettered again, 2 bad usage.`

interface Io { stdout: NodeJS.WritableStream }

type Api = (method: string, path: string) => Promise<unknown>

function queryOf (values: Record<string, unknown>): URLSearchParams {
  const q = new URLSearchParams()
  for (const [flag, name] of [['reason', 'reason'], ['topic', 'topic'], ['since', 'since'], ['client', 'clientId']] as const) {
    const v = values[flag]
    if (typeof v === 'string' && v !== '') q.set(name, v)
  }
  return q
}

function usageFilters (q: URLSearchParams): Filters {
  try {
    return filtersOf(q)
  } catch (err) {
    throw new CulexError('ERR_USAGE', (err as Error).message)
  }
}

/** undefined when nothing listens at `base` (then the data directory is opened instead). */
async function probe (base: string, token: string): Promise<Api | undefined> {
  const call: Api = async (method, p) => {
    const res = await fetch(new URL(p, base), { method, headers: token === '' ? {} : { authorization: `Bearer ${token}` } })
    const body = await res.json().catch(() => ({})) as { error?: { code?: string, message?: string } }
    if (res.status === 404 && body.error?.code === 'not_found' && p.startsWith('/api/dead-letters/')) {
      throw new CulexError('ERR_DEAD_LETTER_NOT_FOUND', body.error.message ?? 'no such dead letter')
    }
    if (!res.ok) throw new CulexError('ERR_ADMIN_API', `the admin API at ${base} answered ${res.status}: ${body.error?.message ?? res.statusText}`)
    return body
  }
  try {
    await fetch(new URL('/healthz', base), { method: 'GET', signal: AbortSignal.timeout(3000) })
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code
    if (code === 'ECONNREFUSED') return undefined
    throw new CulexError('ERR_ADMIN_API', `the admin API at ${base} cannot be reached: ${code ?? (err as Error).message}`)
  }
  return call
}

/** The cluster's Redis (--redis-url, or cluster.redisUrl of the configuration), else the data directory. */
async function openOffline (config: Config, flags: { dataDir?: string, redisUrl?: string }): Promise<CulexStore> {
  const cluster = redisConnectOptions({ ...config.cluster, redisUrl: flags.redisUrl ?? config.cluster.redisUrl })
  if (cluster !== undefined) {
    const { url, ...settings } = cluster
    return await openRedisStore({ redis: redisTarget(url, settings), logger: quietLogger(), limits: NO_LIMITS })
  }
  const dataDir = flags.dataDir ?? config.dataDir
  try {
    return await openDataDir(dataDir)
  } catch (err) {
    if (err instanceof CulexError && err.code === 'ERR_STORE_LOCKED') {
      throw new CulexError('ERR_ADMIN_API', `a broker holds ${dataDir} but its admin API is not at the given --admin-url; pass the right --admin-url and --token`, { cause: err })
    }
    throw err
  }
}

/** --all without filters: the admin API wants it said. */
function withAll (q: URLSearchParams, filters: Filters): URLSearchParams {
  if (Object.keys(filters).length === 0) q.set('all', 'true')
  return q
}

/** Where a client on this machine reaches an admin server bound to `host` (a wildcard address means this machine). */
function adminUrlOf (host: string, port: number): string {
  const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return `http://${local.includes(':') ? `[${local}]` : local}:${port}`
}

function printList (io: Io, rows: Array<Record<string, unknown>>, total: number, json: boolean): void {
  if (json) {
    io.stdout.write(JSON.stringify({ items: rows, total }) + '\n')
    return
  }
  for (const r of rows) io.stdout.write(`${String(r.id)}  ${String(r.rejectedAt)}  ${String(r.reason)}  ${String(r.topic)}  client=${String(r.clientId)}  attempts=${String(r.attempts)}  ${String(r.detail)}\n`)
  io.stdout.write(`${rows.length} of ${total} dead letter${total === 1 ? '' : 's'}\n`)
}

export async function dlqCommand (args: string[], io: Io = process): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      reason: { type: 'string' },
      topic: { type: 'string' },
      since: { type: 'string' },
      client: { type: 'string' },
      limit: { type: 'string' },
      all: { type: 'boolean' },
      json: { type: 'boolean' },
      config: { type: 'string', short: 'c' },
      'admin-url': { type: 'string' },
      token: { type: 'string' },
      'data-dir': { type: 'string' },
      'redis-url': { type: 'string' }
    },
    strict: true,
    allowPositionals: true
  })
  const [action, id, ...extra] = positionals
  if (extra.length > 0 || !['list', 'show', 'replay', 'purge'].includes(action ?? '')) throw new CulexError('ERR_USAGE', 'usage: culex dlq list|show|replay|purge …; run culex dlq --help')
  const q = queryOf(values)
  const filters = usageFilters(q)
  const limit = values.limit === undefined ? 100 : Number(values.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CulexError('ERR_USAGE', '--limit must be an integer between 1 and 1000')
  if (action === 'show' && id === undefined) throw new CulexError('ERR_USAGE', 'usage: culex dlq show <id>')
  if ((action === 'replay' || action === 'purge') && (id === undefined) === (values.all !== true)) {
    throw new CulexError('ERR_USAGE', `usage: culex dlq ${action} <id> | --all [--reason r] [--topic filter] [--since t]`)
  }
  const { config, unknownEnv } = await loadConfig({ file: values.config, env: process.env })
  for (const u of unknownEnv) process.stderr.write(`culex: warning: ${describeUnknownEnv(u)}\n`)
  const base = values['admin-url'] ?? adminUrlOf(config.admin.host, config.admin.port)
  const direct = values['redis-url'] !== undefined
  const api = direct ? undefined : await probe(base, values.token ?? config.admin.authToken)
  const json = values.json === true
  const out = (body: unknown): void => { io.stdout.write(JSON.stringify(body, null, json ? undefined : 2) + '\n') }

  if (api !== undefined) {
    const enc = encodeURIComponent(id ?? '')
    if (action === 'list') {
      q.set('limit', String(limit))
      const page = await api('GET', `/api/dead-letters?${q.toString()}`) as { items: Array<Record<string, unknown>>, total: number }
      printList(io, page.items, page.total, json)
    } else if (action === 'show') {
      out(await api('GET', `/api/dead-letters/${enc}`))
    } else if (action === 'replay') {
      const body = id !== undefined
        ? await api('POST', `/api/dead-letters/${enc}/replay`) as ReplayResult
        : await api('POST', `/api/dead-letters/replay?${withAll(q, filters).toString()}`) as { results: ReplayResult[] }
      out(body)
      const failed = 'results' in body ? body.results.filter(r => r.outcome !== 'published') : body.outcome === 'published' ? [] : [body]
      if (failed.length > 0) {
        process.stderr.write(`culex: ${failed.length} replayed message${failed.length === 1 ? ' was' : 's were'} not published: ${failed.map(r => `${r.id} (${r.reason ?? r.outcome})`).join(', ')}\n`)
        return exitCodes.failure
      }
    } else {
      if (id !== undefined) out(await api('DELETE', `/api/dead-letters/${enc}`))
      else out(await api('DELETE', `/api/dead-letters?${withAll(q, filters).toString()}`))
    }
    return exitCodes.ok
  }

  if (action === 'replay') {
    throw new CulexError('ERR_ADMIN_API', direct ? 'replay needs a running broker: give a node\'s --admin-url instead of --redis-url' : `replay needs a running broker: nothing listens at ${base} (--admin-url)`)
  }
  const store = await openOffline(config, { dataDir: values['data-dir'], redisUrl: values['redis-url'] })
  try {
    const log = store.deadLetters
    if (action === 'list') {
      const all = log.list(e => matchesFilters(e, filters)).reverse()
      printList(io, all.slice(0, limit).map(row), all.length, json)
    } else if (action === 'show') {
      const entry = log.get(id ?? '')
      const payload = entry === undefined ? undefined : await log.payload(entry.id)
      if (entry === undefined || payload === undefined) throw new CulexError('ERR_DEAD_LETTER_NOT_FOUND', `no dead letter ${JSON.stringify(id)}`)
      out(toEnvelope(entry, payload))
    } else {
      const ids = id !== undefined ? [id] : log.list(e => matchesFilters(e, filters)).map(e => e.id)
      const removed = await log.remove(ids)
      if (id !== undefined && removed.length === 0) throw new CulexError('ERR_DEAD_LETTER_NOT_FOUND', `no dead letter ${JSON.stringify(id)}`)
      out({ removed: removed.length })
    }
  } finally {
    await store.close()
  }
  return exitCodes.ok
}
