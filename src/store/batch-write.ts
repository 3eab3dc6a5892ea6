export type WriteOp = { type: 'put', key: string, value: Buffer } | { type: 'del', key: string }

/** The slice of a `level` database the queue writes through: its chained batch. */
export interface ChainedBatchDb {
  batch: () => {
    put: (key: string, value: Buffer) => unknown
    del: (key: string) => unknown
    write: (options: { sync: boolean }) => Promise<void>
    close: () => Promise<void>
  }
}

/** What a batch holds: the ops in order; a put cancelled by a later del of its key in the same batch is null. */
export type BatchOp = WriteOp | null

/**
 * One atomic write of `ops`. Uses level's chained batch: its array form copies and re-validates every op in
 * JavaScript and measured about 6x the CPU per op (12 µs against 2 µs for 150-byte puts).
 */
export async function writeBatch (db: ChainedBatchDb, ops: readonly BatchOp[], sync: boolean): Promise<void> {
  const batch = db.batch()
  try {
    for (const op of ops) {
      if (op === null) continue
      if (op.type === 'put') batch.put(op.key, op.value)
      else batch.del(op.key)
    }
  } catch (err) {
    await batch.close()
    throw err
  }
  await batch.write({ sync })
}
