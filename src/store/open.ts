import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Level } from 'level'
import { CulexError } from '../errors.js'
import { decodeRecord, encodeRecord } from './codec.js'
import { FORMAT_VERSION, META_KEY } from './layout.js'

export type StoreDb = Level<string, Buffer>

/** Left in the directory when LevelDB reported dropped records, so every later open fails until someone decides. */
export const CORRUPT_MARKER = 'CULEX-CORRUPT'

const ADVICE = 'run `culex store check` / `culex store repair`, or set store.onCorrupt: moveAside'

export function corruptError (dir: string, reason: string, cause?: unknown): CulexError {
  return new CulexError('ERR_STORE_CORRUPT', `the store at ${dir} is corrupt: ${reason}; ${ADVICE}`, cause === undefined ? {} : { cause })
}

function levelCode (err: unknown): string | undefined {
  const e = err as { code?: unknown, cause?: { code?: unknown } } | undefined
  if (typeof e?.cause?.code === 'string') return e.cause.code
  return typeof e?.code === 'string' ? e.code : undefined
}

export function isLevelCorruption (err: unknown): boolean {
  return levelCode(err) === 'LEVEL_CORRUPTION'
}

/** Maps a failed LevelDB open to the Culex error a user can act on. */
export function openError (dir: string, err: unknown): CulexError {
  const code = levelCode(err)
  const detail = (err as { cause?: Error })?.cause?.message ?? (err as Error)?.message ?? String(err)
  if (code === 'LEVEL_LOCKED') {
    return new CulexError('ERR_STORE_LOCKED', `the store at ${dir} is in use by another culex process (pid file?)`, { cause: err })
  }
  if (code === 'LEVEL_CORRUPTION') return corruptError(dir, detail, err)
  return new CulexError('ERR_STORE_OPEN', `cannot open the store at ${dir}: ${detail}`, { cause: err })
}

export async function openDb (dir: string, createIfMissing: boolean): Promise<StoreDb> {
  if (createIfMissing) {
    try {
      await mkdir(dir, { recursive: true })
    } catch (err) {
      throw new CulexError('ERR_STORE_OPEN', `cannot create the store directory ${dir}: ${(err as Error).message}`, { cause: err })
    }
  }
  const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' })
  try {
    await db.open({ createIfMissing })
  } catch (err) {
    throw openError(dir, err)
  }
  return db
}

/**
 * LevelDB recovers a damaged write-ahead log by skipping the bad records and only writing a line to its LOG
 * file ("dropping N bytes; Corruption: …"); the damaged log is deleted right after. Reading LOG after open is
 * the only way to notice that data was lost.
 */
export async function recoveryProblems (dir: string): Promise<string[]> {
  let log: string
  try {
    log = await readFile(path.join(dir, 'LOG'), 'utf8')
  } catch {
    return []
  }
  return log.split('\n').filter((line) => line.includes('Corruption')).map((line) => line.replace(/^\S+ \S+ /, ''))
}

export async function readMarker (dir: string): Promise<string | undefined> {
  try {
    return await readFile(path.join(dir, CORRUPT_MARKER), 'utf8')
  } catch {
    return undefined
  }
}

export async function writeMarker (dir: string, lines: string[]): Promise<void> {
  const text = `LevelDB dropped damaged records while opening this store on ${new Date().toISOString()}:\n${lines.join('\n')}\n` +
    'Delete this file to keep the data that survived, or run `culex store repair` to move the directory aside.\n'
  await writeFile(path.join(dir, CORRUPT_MARKER), text)
}

async function hasAnyKey (db: StoreDb): Promise<boolean> {
  const it = db.keys({ limit: 1 })
  try {
    return (await it.next()) !== undefined
  } finally {
    await it.close()
  }
}

/** Reads (or, for an empty database, writes) the format record, upgrading an older one; throws if it is newer. */
export async function ensureFormat (db: StoreDb, dir: string): Promise<{ formatVersion: number, created: boolean }> {
  let raw: Buffer | undefined
  try {
    raw = await db.get(META_KEY)
  } catch (err) {
    throw isLevelCorruption(err) ? corruptError(dir, 'the format record cannot be read', err) : openError(dir, err)
  }
  if (raw === undefined) {
    if (await hasAnyKey(db)) throw corruptError(dir, `data without a format record (${META_KEY})`)
    await db.put(META_KEY, encodeRecord({ formatVersion: FORMAT_VERSION, createdAt: new Date().toISOString() }), { sync: true })
    return { formatVersion: FORMAT_VERSION, created: true }
  }
  let version: unknown
  try {
    version = decodeRecord(raw).fields.formatVersion
  } catch (err) {
    throw corruptError(dir, 'the format record is undecodable', err)
  }
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw corruptError(dir, `the format record holds an invalid version (${String(version)})`)
  }
  if (version > FORMAT_VERSION) {
    throw new CulexError('ERR_STORE_VERSION',
      `the store at ${dir} has format version ${version}, but this culex reads only version ${FORMAT_VERSION}; ` +
      'run the culex release that wrote it, or point store.dir at another directory')
  }
  if (version < FORMAT_VERSION) {
    // Older values stay readable as they are; only the record changes, so an older culex refuses the directory
    // instead of misreading the values written from now on.
    await db.put(META_KEY, encodeRecord({ formatVersion: FORMAT_VERSION, upgradedFrom: version, upgradedAt: new Date().toISOString() }), { sync: true })
  }
  return { formatVersion: FORMAT_VERSION, created: false }
}
