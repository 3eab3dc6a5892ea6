import { access, mkdir, rename } from 'node:fs/promises'
import path from 'node:path'
import { CulexError } from '../errors.js'
import { decodeRecord } from './codec.js'
import { FORMAT_VERSION, META_KEY, parseNumberedKey, PREFIX, splitClientKey, decodeClientId } from './layout.js'
import { openDb, readMarker, recoveryProblems, writeMarker, CORRUPT_MARKER, type StoreDb } from './open.js'

export interface StoreCounts {
  keys: number
  sessions: number
  subscriptions: number
  queued: number
  inflight: number
  incoming: number
  wills: number
  retained: number
  /** Messages in shared subscriptions' durable queues. */
  groupQueued?: number
  /** Dead letters kept (docs/dead-letter.md). */
  deadLetters?: number
}

export interface StoreCheck {
  ok: boolean
  problems: string[]
  formatVersion?: number
  counts: StoreCounts
}

const MAX_PROBLEMS = 50

async function exists (file: string): Promise<boolean> {
  try {
    await access(file)
    return true
  } catch {
    return false
  }
}

/** The problems a check found, at most MAX_PROBLEMS of them listed. */
export class Findings {
  readonly problems: string[] = []
  #more = 0

  add (problem: string): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(problem)
    else this.#more++
  }

  list (): string[] {
    return this.#more === 0 ? this.problems : [...this.problems, `… and ${this.#more} more`]
  }
}

/** Decodes one record and checks that its key fits the schema; returns the session it belongs to, if any. */
function checkRecord (key: string, value: Buffer, counts: StoreCounts): string | undefined {
  const kind = key.slice(0, 2)
  const fields = decodeRecord(value).fields
  if (kind === PREFIX.subscription) {
    const parts = splitClientKey(key)
    if (parts === undefined) throw new Error('malformed key')
    if (fields.qos !== 0 && fields.qos !== 1 && fields.qos !== 2) throw new Error(`invalid subscription qos ${String(fields.qos)}`)
    counts.subscriptions++
    return parts.clientId
  }
  if (kind === PREFIX.outgoing || kind === PREFIX.incoming) {
    const parts = parseNumberedKey(key, kind === PREFIX.outgoing ? 16 : 5)
    if (parts === undefined) throw new Error('malformed key')
    if (kind === PREFIX.incoming) counts.incoming++
    else if (typeof fields.messageId === 'number') counts.inflight++
    if (kind === PREFIX.outgoing) counts.queued++
    return parts.clientId
  }
  if (kind === PREFIX.group) {
    if (parseNumberedKey(key, 16) === undefined) throw new Error('malformed key')
    if (typeof fields.topic !== 'string') throw new Error('shared queue message without a topic')
    counts.groupQueued = (counts.groupQueued ?? 0) + 1
    return undefined
  }
  if (kind === PREFIX.deadLetter) {
    if (!/^\d{16}$/.test(key.slice(2))) throw new Error('malformed key')
    if (typeof fields.topic !== 'string' || typeof fields.reason !== 'string') throw new Error('dead letter without a topic or reason')
    counts.deadLetters = (counts.deadLetters ?? 0) + 1
    return undefined
  }
  if (kind === PREFIX.will) {
    if (key.includes('!', 2)) throw new Error('malformed key')
    counts.wills++
    return undefined
  }
  if (kind === PREFIX.session) {
    if (key.includes('!', 2)) throw new Error('malformed key')
    if (typeof fields.createdAt !== 'number') throw new Error('session record without times')
    return decodeClientId(key.slice(2))
  }
  if (kind === PREFIX.retained) {
    if (typeof fields.topic !== 'string') throw new Error('retained message without a topic')
    counts.retained++
    return undefined
  }
  if (key !== META_KEY) throw new Error('unknown key prefix')
  return undefined
}

async function scanAll (db: StoreDb, findings: Findings, counts: StoreCounts): Promise<void> {
  const sessions = new Set<string>()
  const it = db.iterator({ keys: true, values: true })
  try {
    while (true) {
      const entries = await it.nextv(1000)
      if (entries.length === 0) break
      for (const [key, value] of entries) {
        counts.keys++
        try {
          const session = checkRecord(key, value, counts)
          if (session !== undefined) sessions.add(session)
        } catch (err) {
          findings.add(`key ${JSON.stringify(key)}: ${(err as Error).message}`)
        }
      }
    }
  } catch (err) {
    findings.add(`reading the database failed after ${counts.keys} keys: ${(err as Error).message}`)
  } finally {
    await it.close()
  }
  counts.sessions = sessions.size
}

/**
 * Verifies every record of a store that is not in use. Read-only, except that records LevelDB dropped while
 * recovering are written to CULEX-CORRUPT (LevelDB deletes the damaged log, so this is the only trace left).
 */
export async function checkStore (dir: string): Promise<StoreCheck> {
  const counts: StoreCounts = { keys: 0, sessions: 0, subscriptions: 0, queued: 0, inflight: 0, incoming: 0, wills: 0, retained: 0 }
  if (!await exists(dir)) throw new CulexError('ERR_STORE_OPEN', `the store at ${dir} does not exist`)
  const findings = new Findings()
  const marker = await readMarker(dir)
  if (marker !== undefined) findings.add(`${CORRUPT_MARKER}: ${marker.split('\n').slice(0, 2).join(' ')}`)
  if (!await exists(path.join(dir, 'CURRENT'))) return { ok: findings.problems.length === 0, problems: findings.list(), counts }
  let db: StoreDb
  try {
    db = await openDb(dir, false)
  } catch (err) {
    if (err instanceof CulexError && err.code === 'ERR_STORE_LOCKED') throw err
    findings.add((err as Error).message)
    return { ok: false, problems: findings.list(), counts }
  }
  try {
    const dropped = await recoveryProblems(dir)
    if (dropped.length > 0) {
      await writeMarker(dir, dropped)
      for (const line of dropped) findings.add(`LevelDB dropped damaged records: ${line}`)
    }
    let formatVersion: number | undefined
    const raw = await db.get(META_KEY).catch((err: Error) => { findings.add(`format record unreadable: ${err.message}`) })
    if (raw !== undefined) {
      try {
        const version = decodeRecord(raw).fields.formatVersion
        if (typeof version === 'number') formatVersion = version
        else findings.add(`format record holds an invalid version (${String(version)})`)
      } catch (err) {
        findings.add(`format record: ${(err as Error).message}`)
      }
    }
    if (formatVersion !== undefined && formatVersion > FORMAT_VERSION) {
      findings.add(`format version ${formatVersion} is newer than this culex reads (${FORMAT_VERSION}); records not checked`)
      return { ok: false, problems: findings.list(), formatVersion, counts }
    }
    await scanAll(db, findings, counts)
    if (raw === undefined && counts.keys > 0) findings.add(`data without a format record (${META_KEY})`)
    const result: StoreCheck = { ok: findings.problems.length === 0, problems: findings.list(), counts }
    if (formatVersion !== undefined) result.formatVersion = formatVersion
    return result
  } finally {
    await db.close()
  }
}

function stamp (): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\.(\d+)Z$/, '$1Z')
}

/** Moves a store that is not in use to `<dir>.corrupt-<time>` and leaves an empty directory in its place. */
export async function repairStore (dir: string): Promise<{ movedTo: string }> {
  if (!await exists(dir)) throw new CulexError('ERR_STORE_OPEN', `the store at ${dir} does not exist`)
  if (await exists(path.join(dir, 'CURRENT'))) {
    try {
      const db = await openDb(dir, false)
      await db.close()
    } catch (err) {
      // only a lock matters here: a store that cannot be opened is what repair is for
      if (err instanceof CulexError && err.code === 'ERR_STORE_LOCKED') throw err
    }
  }
  const base = `${dir.replace(/[/\\]+$/, '')}.corrupt-${stamp()}`
  let movedTo = base
  for (let i = 1; await exists(movedTo); i++) movedTo = `${base}-${i}`
  try {
    await rename(dir, movedTo)
    await mkdir(dir, { recursive: true })
  } catch (err) {
    throw new CulexError('ERR_STORE_OPEN', `cannot move the store at ${dir} aside: ${(err as Error).message}`, { cause: err })
  }
  return { movedTo }
}
