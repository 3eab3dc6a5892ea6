import { mkdtemp, readdir, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { Level } from 'level'
import { pino } from 'pino'
import type { Logger } from '../../../src/log/logger.js'
import { openStore, type LevelStore, type StoreLimits, type StoreOptions } from '../../../src/store/index.js'
import { isReadBack } from '../../../src/store/layout.js'
import { LogReopener } from '../../../src/store/log-reopen.js'
import { DropReporter } from '../../../src/store/queue-limits.js'
import { ValueReader } from '../../../src/store/reader.js'
import { WriteQueue } from '../../../src/store/write-queue.js'

export const unlimited: StoreLimits = {
  maxQueuedMessages: 0,
  maxQueuedBytes: 0,
  maxTotalQueuedMessages: 0,
  maxTotalQueuedBytes: 0,
  overflowPolicy: 'dropOldest',
  messageExpiryMs: 0,
  queueQos0: false,
  maxRetainedMessages: 0
}

export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}

export interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

/** A real pino logger whose lines land in an array. */
export function captureLogger (): { logger: Logger, lines: LogLine[] } {
  const lines: LogLine[] = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine)
      }
      done()
    }
  })
  return { logger: pino({ level: 'debug' }, sink), lines }
}

/** Temp directories for one test file, removed in afterAll/afterEach. */
export class TempDirs {
  readonly #dirs: string[] = []

  async make (): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'culex-store-test-'))
    this.#dirs.push(dir)
    return dir
  }

  /** Removes the directories and anything repairStore moved aside next to them (`<dir>.corrupt-<time>`). */
  async cleanup (): Promise<void> {
    const dirs = this.#dirs.splice(0)
    const siblings = await readdir(os.tmpdir())
    const doomed = dirs.flatMap((dir) => [dir, ...siblings.filter((name) => name.startsWith(`${path.basename(dir)}.corrupt-`)).map((name) => path.join(os.tmpdir(), name))])
    await Promise.all(doomed.map((dir) => rm(dir, { recursive: true, force: true })))
  }
}

export type OpenOverrides = Partial<Omit<StoreOptions, 'limits'>> & { limits?: Partial<StoreLimits> }

export async function open (dir: string, overrides: OpenOverrides = {}): Promise<LevelStore> {
  const { limits, ...rest } = overrides
  return await openStore({ dir, sync: false, logger: silentLogger(), ...rest, limits: { ...unlimited, ...limits } })
}

export function publish (topic: string, payload: string | Buffer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos: 1, retain: false, dup: false, ...extra }
}

export async function drain<T> (stream: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = []
  for await (const item of stream) items.push(item)
  return items
}

/** The parts of a LevelDB store a test builds one feature on (its write queue, reader, drops), over a real database. */
export interface StoreParts {
  db: Level<string, Buffer>
  logger: Logger
  queue: WriteQueue
  reader: ValueReader
  drops: DropReporter
  close: () => Promise<void>
}

export async function storeParts (dir: string): Promise<StoreParts> {
  const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
  await db.open()
  const logger = silentLogger()
  const reopener = new LogReopener(db, dir, logger)
  const queue = new WriteQueue({ db, dir, sync: false, logger, tracked: isReadBack, reopener })
  const reader = new ValueReader(db, queue, reopener)
  const close = async (): Promise<void> => {
    await queue.close()
    await db.close()
  }
  return { db, logger, queue, reader, drops: new DropReporter(logger, undefined), close }
}
