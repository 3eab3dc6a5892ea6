import type { Redis } from 'ioredis'
import { Findings, type StoreCheck, type StoreCounts } from '../check.js'
import { decodeRecord } from '../codec.js'
import { parseNumberedKey, PREFIX } from '../layout.js'
import { readHash, readInventory, type Inventory } from './check-read.js'
import { inspectQueue, type QueueRebuild } from './check-queue.js'
import { RedisKeys } from './keys.js'

/** What `culex store repair` changes after a check (repair.ts applies it). */
export interface RedisFixes {
  /** Queues to write again as they should be (check-queue.ts). */
  queues: Array<{ clientId: string, rebuild: QueueRebuild }>
  /** Hash fields that cannot be read: set aside, then deleted. */
  aside: Array<{ key: string, field: string, value: Buffer }>
  /** Clients with subscriptions or a queue but no session record: they get one, disconnected now, so they expire. */
  sessions: string[]
  willOwners: { set: Array<[clientId: string, brokerId: string]>, del: string[] }
  /** Keys of the wrong type (the scripts would fail on them): renamed aside whole. */
  renames: string[]
  /** The layout version record is missing: write it. */
  format: boolean
  /** The queue totals differ from what the queues hold: set them to this. */
  totals?: { entries: number, bytes: number }
  /** subs-gen is behind the subscription log: raise it to this generation. */
  subsGen?: number
}

export interface RedisInspection {
  check: StoreCheck
  fixes: RedisFixes
  /** The layout version Redis holds is newer than this culex reads: nothing was checked past it. */
  newer: boolean
}

type Decoded = Record<string, unknown>

/** The state a check reads and the findings it adds to. */
class Inspector {
  readonly findings = new Findings()
  readonly counts: StoreCounts = { keys: 0, sessions: 0, subscriptions: 0, queued: 0, inflight: 0, incoming: 0, wills: 0, retained: 0, groupQueued: 0, deadLetters: 0 }
  readonly fixes: RedisFixes = { queues: [], aside: [], sessions: [], willOwners: { set: [], del: [] }, renames: [], format: false }
  readonly redis: Redis
  readonly keys: RedisKeys
  /** Entries and bytes of every queue as the check (or its repair) leaves them. */
  readonly queues = { entries: 0, bytes: 0 }
  /** Keys of the wrong type: never read (a read would fail with WRONGTYPE). */
  readonly wrong = new Set<string>()

  constructor (redis: Redis, prefix: string) {
    this.redis = redis
    this.keys = new RedisKeys(prefix)
  }

  readable (key: string): boolean {
    return !this.wrong.has(key)
  }

  /** Decodes every field of a hash with `read`; one that fails is a problem and is set aside by a repair. */
  async records (key: string, what: string, read: (field: string, value: Buffer) => void): Promise<void> {
    if (!this.readable(key)) return
    for (const [field, value] of await readHash(this.redis, key)) {
      try {
        read(field, value)
      } catch (err) {
        this.findings.add(`${what} ${JSON.stringify(field)} in ${key}: ${(err as Error).message}`)
        this.fixes.aside.push({ key, field, value })
      }
    }
  }
}

function json (value: Buffer): Decoded {
  const parsed = JSON.parse(value.toString()) as unknown
  if (parsed === null || typeof parsed !== 'object') throw new Error('not a JSON object')
  return parsed as Decoded
}

function decoded (value: Buffer, ...fields: string[]): Decoded {
  const record = decodeRecord(value).fields
  for (const f of fields) if (typeof record[f] !== 'string') throw new Error(`no ${f}`)
  return record
}

/** Whether the queue holds anything (a session that should have a record). */
async function inspectQueueOf (ins: Inspector, clientId: string): Promise<boolean> {
  const { redis, keys, counts } = ins
  const [q, qm, qx, qe] = [keys.queue(clientId), keys.queueMessages(clientId), keys.queueIndex(clientId), keys.queueEvicted(clientId)]
  if (![q, qm, qx].every(key => ins.readable(key))) return false
  const [order, bodies, index, evicted] = await Promise.all([
    redis.zrange(q, 0, -1), readHash(redis, qm), redis.hgetall(qx), ins.readable(qe) ? redis.hkeys(qe) : []
  ])
  const queue = inspectQueue(clientId, { order, bodies, index, evicted })
  for (const p of queue.problems) ins.findings.add(p)
  if (queue.problems.length > 0) ins.fixes.queues.push({ clientId, rebuild: queue.rebuild })
  counts.queued += queue.queued
  counts.inflight += queue.inflight
  ins.queues.entries += queue.queued
  ins.queues.bytes += queue.bytes
  return queue.queued > 0 || queue.evicted > 0 || queue.rebuild.lost.length > 0
}

async function inspectClient (ins: Inspector, clientId: string, kinds: Set<string>, recorded: Set<string>): Promise<boolean> {
  const { keys, counts, fixes, findings } = ins
  let held = false
  if (kinds.has('subs')) {
    await ins.records(keys.subs(clientId), 'subscription', (_filter, value) => {
      const qos = json(value).qos
      if (qos !== 0 && qos !== 1 && qos !== 2) throw new Error(`invalid qos ${String(qos)}`)
      counts.subscriptions++
      held = true
    })
  }
  if (kinds.has('q') || kinds.has('qm') || kinds.has('qx') || kinds.has('qe')) held = await inspectQueueOf(ins, clientId) || held
  if (kinds.has('in')) {
    await ins.records(keys.incoming(clientId), 'inbound QoS 2 record', (_id, value) => { decoded(value, 'topic'); counts.incoming++ })
  }
  const queueKeys = [keys.queue(clientId), keys.queueMessages(clientId), keys.queueIndex(clientId), keys.queueEvicted(clientId)]
    .filter((_k, i) => kinds.has(['q', 'qm', 'qx', 'qe'][i]))
  if (held && !recorded.has(clientId)) {
    findings.add(`client ${JSON.stringify(clientId)} has subscriptions or queued messages but no session record (left by a removed session): it never expires`)
    fixes.sessions.push(clientId)
  } else if (!held && !recorded.has(clientId) && queueKeys.length > 0) {
    findings.add(`client ${JSON.stringify(clientId)} has an empty queue but no session and no subscription (left by a removed session): ${queueKeys.join(', ')}`)
    fixes.renames.push(...queueKeys)
  }
  return held || kinds.has('in')
}

async function inspectFormat (ins: Inspector, inv: Inventory, readable: number): Promise<number | undefined> {
  const raw = ins.readable(ins.keys.format) ? await ins.redis.get(ins.keys.format) : null
  if (raw === null) {
    if (inv.keys > 0) {
      ins.findings.add(`data without a layout version record (${ins.keys.format})`)
      ins.fixes.format = true
    }
    return undefined
  }
  let version: unknown
  try {
    version = (JSON.parse(raw) as { formatVersion?: unknown }).formatVersion
  } catch {}
  if (typeof version !== 'number') {
    ins.findings.add(`${ins.keys.format} holds no layout version: ${JSON.stringify(raw.slice(0, 80))}`)
    return undefined
  }
  if (version !== readable) ins.findings.add(`layout version ${version} is not the one this culex reads (${readable})${version > readable ? '; records not checked' : ''}`)
  return version
}

async function inspectShared (ins: Inspector): Promise<void> {
  const { keys, counts, findings, fixes, redis } = ins
  await ins.records(keys.retained, 'retained message', (topic, value) => {
    if (decoded(value, 'topic').topic !== topic) throw new Error('stored under another topic')
    counts.retained++
  })
  const owners = ins.readable(keys.willOwners) ? await redis.hgetall(keys.willOwners) : {}
  const willed = new Set<string>()
  await ins.records(keys.wills, 'will', (clientId, value) => {
    const will = decoded(value, 'topic')
    willed.add(clientId)
    counts.wills++
    if (owners[clientId] === undefined) {
      findings.add(`will of ${JSON.stringify(clientId)} has no owner in ${keys.willOwners}: no node ever deletes it`)
      fixes.willOwners.set.push([clientId, typeof will.brokerId === 'string' ? will.brokerId : ''])
    }
  })
  for (const clientId of Object.keys(owners)) {
    if (willed.has(clientId) || fixes.aside.some(a => a.key === keys.wills && a.field === clientId)) continue
    findings.add(`will owner of ${JSON.stringify(clientId)} without a will`)
    fixes.willOwners.del.push(clientId)
  }
  await ins.records(keys.groups, 'shared group message', (key, value) => {
    if (!key.startsWith(PREFIX.group) || parseNumberedKey(key, 16) === undefined) throw new Error('malformed key')
    decoded(value, 'topic')
    counts.groupQueued = (counts.groupQueued ?? 0) + 1
  })
  await ins.records(keys.deadLetters, 'dead letter', (key, value) => {
    if (!/^d!\d{16}$/.test(key)) throw new Error('malformed key')
    decoded(value, 'topic', 'reason')
    counts.deadLetters = (counts.deadLetters ?? 0) + 1
  })
  if (ins.readable(keys.queueTotals)) {
    const stored = await redis.hgetall(keys.queueTotals)
    const [entries, bytes] = [Number(stored.n ?? 0), Number(stored.b ?? 0)]
    if (entries !== ins.queues.entries || bytes !== ins.queues.bytes) {
      findings.add(`${keys.queueTotals} counts ${entries} entries of ${bytes} bytes, the queues hold ${ins.queues.entries} of ${ins.queues.bytes}: the broker-wide bounds are applied to the wrong figures`)
      fixes.totals = { ...ins.queues }
    }
  }
  if (!ins.readable(keys.subsLog) || !ins.readable(keys.subsGen)) return
  const [last, gen] = await Promise.all([redis.xrevrange(keys.subsLog, '+', '-', 'COUNT', 1), redis.get(keys.subsGen)])
  const fields = last[0]?.[1] ?? []
  let logged = 0
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === 'g') logged = Number(fields[i + 1])
  if (logged > Number(gen ?? 0)) {
    findings.add(`${keys.subsGen} is ${gen ?? 'absent'}, behind the last subscription change logged (${logged}): nodes would miss changes`)
    fixes.subsGen = logged
  }
}

/**
 * Reads every key of the store under `prefix` and checks it against the layout (docs/store.md, "Redis") and the
 * invariants the scripts keep. Read-only; works with the nodes running (a check then sees a moment of a live
 * store: a change made during it can show as a problem that a second check no longer finds).
 */
export async function inspectRedisStore (redis: Redis, prefix: string, readable: number): Promise<RedisInspection> {
  const ins = new Inspector(redis, prefix)
  const inv = await readInventory(redis, prefix)
  ins.counts.keys = inv.keys
  for (const key of inv.unknown) ins.findings.add(`key ${JSON.stringify(key)} fits no part of the layout`)
  for (const w of inv.wrongType) {
    ins.findings.add(`key ${JSON.stringify(w.key)} is a ${w.type}, the layout has a ${w.expected}`)
    ins.wrong.add(w.key)
    ins.fixes.renames.push(w.key)
  }
  const formatVersion = await inspectFormat(ins, inv, readable)
  const result = (): StoreCheck => {
    const check: StoreCheck = { ok: ins.findings.problems.length === 0, problems: ins.findings.list(), counts: ins.counts }
    if (formatVersion !== undefined) check.formatVersion = formatVersion
    return check
  }
  if (formatVersion !== undefined && formatVersion > readable) return { check: result(), fixes: ins.fixes, newer: true }
  const recorded = new Set<string>()
  await ins.records(ins.keys.sessions, 'session record', (clientId, value) => {
    if (typeof json(value).createdAt !== 'number') throw new Error('no createdAt')
    recorded.add(clientId)
  })
  const sessions = new Set(recorded)
  for (const clientId of [...inv.clients.keys()].sort()) {
    if (await inspectClient(ins, clientId, inv.clients.get(clientId) as Set<string>, recorded)) sessions.add(clientId)
  }
  ins.counts.sessions = sessions.size
  await inspectShared(ins)
  return { check: result(), fixes: ins.fixes, newer: false }
}
