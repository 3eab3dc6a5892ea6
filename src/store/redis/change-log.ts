import type { Redis } from 'ioredis'

/**
 * The change logs that keep each node's copy of shared state fresh (subscriptions.ts, kv.ts): a stream entry
 * `{ c: what changed, n: writer, g: generation }` per change, with the generation counter, written inside the
 * change's own MULTI. The transaction's result for it (its last command) is `[generation, entry id]`.
 */
export function logChange (tx: ReturnType<Redis['multi']>, keys: { gen: string, log: string }, changed: string, writer: string, maxLen: number): void {
  // INCR and an XADD carrying its result cannot be two commands of one MULTI: a script does both
  tx.eval(LOG_CHANGE, 2, keys.gen, keys.log, changed, writer, maxLen)
}

const LOG_CHANGE = `
local g = redis.call('INCR', KEYS[1])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'c', ARGV[1], 'n', ARGV[2], 'g', g)
return { g, id }
`

export type LogEntry = [id: string, fields: string[]]

/** One field of a log entry ('' when absent). */
export function field (fields: string[], name: string): string {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]
  return ''
}
