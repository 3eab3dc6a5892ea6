import type { Redis } from 'ioredis'
import type { Logger } from '../log/logger.js'
import { decodeEntry, type BusEntry } from './codec.js'

/** Entries read from the node's stream in one XREAD. */
const READ_COUNT = 500
/** How long one XREAD blocks before it is sent again (it returns as soon as an entry arrives). */
const BLOCK_MS = 5000
/** Ids of the messages delivered last, to drop one sent twice (see dedupe). */
const DEDUPE_WINDOW = 20_000

export interface BusCounters {
  /** Entries this node added to other nodes' streams. */
  sent: number
  /** Entries read from this node's stream. */
  received: number
  /** Entries written while Redis had not yet confirmed them: what a Redis outage holds back. */
  pending: number
  /** Entries for a node whose stream was gone (it had left or been removed meanwhile). */
  unrouted: number
  /** Messages read twice (a write resent after a lost connection) and dropped. */
  duplicates: number
  /** Times a connection to Redis was lost and made again (the reader resumes from the last id it read). */
  reconnects: number
  /** Age in ms of the last entry read when it was read (Redis' clock in its id against ours). */
  lagMs: number
}

/**
 * The node's inbox: a Redis stream only this node reads, from the id it last read, so a lost connection loses
 * nothing (the read resumes where it stopped) and the stream keeps what arrives meanwhile (up to
 * cluster.busMaxLenMessages). Entries are handled one batch at a time, in order (`handle` gets what one read
 * brought, duplicates left out); the next read waits for the batch's deliveries, so a node that cannot keep up
 * leaves its backlog in Redis rather than in memory.
 */
export function readInbox (reader: Redis, trimmer: Redis, key: string, counters: BusCounters, handle: (entries: BusEntry[]) => Promise<void>, log: Logger): { close: () => void } {
  let lastId = '0-0'
  let closed = false
  let failing = false
  const seen = new Set<string>()

  const dedupe = (entry: BusEntry): boolean => {
    // ioredis resends a command whose reply a lost connection swallowed: an entry that Redis had added is then
    // in the stream twice. The sending run, the message's broker and its counter name it; a repeat is dropped.
    if (entry.kind !== 'message') return false
    const id = `${entry.run}:${entry.packet.brokerId ?? ''}:${String(entry.packet.brokerCounter)}`
    if (seen.has(id)) return true
    seen.add(id)
    if (seen.size > DEDUPE_WINDOW) seen.delete(seen.values().next().value as string)
    return false
  }

  const loop = async (): Promise<void> => {
    while (!closed) {
      let reply: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null
      try {
        reply = await reader.xreadBuffer('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', key, lastId) as typeof reply
        if (failing) {
          failing = false
          log.info({ lastId }, 'cluster bus reading again')
        }
      } catch (err) {
        if (closed) return
        if (!failing) {
          failing = true
          log.warn({ err, lastId }, 'cluster bus read failed; resuming from the last id once Redis answers')
        }
        await new Promise(resolve => setTimeout(resolve, 100))
        continue
      }
      if (reply === null || reply.length === 0) {
        counters.lagMs = 0
        continue
      }
      const batch: BusEntry[] = []
      for (const [id, fields] of reply[0][1]) {
        lastId = id.toString()
        counters.received++
        const entry = decodeEntry(fields)
        if (entry === undefined) continue
        if (dedupe(entry)) {
          counters.duplicates++
          continue
        }
        batch.push(entry)
      }
      counters.lagMs = Math.max(0, Date.now() - Number(lastId.split('-')[0]))
      await handle(batch).catch((err: unknown) => log.error({ err, entries: batch.length }, 'cluster bus entries not handled'))
      // What was handled leaves the stream: only this node reads it.
      trimmer.xtrim(key, 'MINID', lastId).catch(() => {})
    }
  }
  void loop()
  return {
    close: () => {
      closed = true
      reader.disconnect()
    }
  }
}

/**
 * Adds each kind/value pair of ARGV to the stream KEYS[1] (ARGV[2]: 'NOMKSTREAM', only if it exists, or 'MAKE');
 * returns how many were not added.
 */
const ADD_ALL = `
local missed = 0
for i = 3, #ARGV, 2 do
  local added
  if ARGV[2] == 'NOMKSTREAM' then
    added = redis.call('XADD', KEYS[1], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[1], '*', ARGV[i], ARGV[i + 1])
  else
    added = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', ARGV[i], ARGV[i + 1])
  end
  if not added then missed = missed + 1 end
end
return missed
`

type AddAll = (key: string, maxLen: number, mode: string, ...fields: Array<string | Buffer>) => Promise<number>

/**
 * Adds entries to other nodes' streams, capped at `maxLen` each. The entries for one node sent in the same turn of
 * the event loop go in one command (a script adding each in order): ioredis' cost per command was the sender's
 * largest. The promise resolves once Redis holds the entry; while Redis is away, ioredis keeps the writes and sends
 * them, in order, when it is back. `streamOf` names the stream of a target: a node's stream that no longer exists (its
 * node left or was removed) is not made again, the entry is counted as sent to no one; a shared group's inbox is
 * made by the first message (`make`).
 */
export function createSender (redis: Redis, streamOf: (target: string) => string, counters: BusCounters, maxLen: number, make = false, wrote: () => void = () => {}) {
  redis.defineCommand('culexBusAdd', { numberOfKeys: 1, lua: ADD_ALL })
  const addAll = (redis as Redis & { culexBusAdd: AddAll }).culexBusAdd.bind(redis)
  let batches = new Map<string, { fields: Array<string | Buffer>, done: Array<{ resolve: () => void, reject: (err: unknown) => void }> }>()
  const flush = (): void => {
    const now = batches
    batches = new Map()
    for (const [nodeId, batch] of now) {
      addAll(streamOf(nodeId), maxLen, make ? 'MAKE' : 'NOMKSTREAM', ...batch.fields).then((missed) => {
        counters.unrouted += missed
        // before the publishes it carried are acknowledged: their replica wait must cover this write too
        wrote()
        for (const d of batch.done) d.resolve()
      }, (err: unknown) => {
        for (const d of batch.done) d.reject(err)
      }).finally(() => { counters.pending -= batch.done.length })
    }
  }
  return async (nodeId: string, fields: Array<string | Buffer>): Promise<void> => {
    counters.sent++
    counters.pending++
    if (batches.size === 0) process.nextTick(flush)
    let batch = batches.get(nodeId)
    if (batch === undefined) batches.set(nodeId, batch = { fields: [], done: [] })
    batch.fields.push(...fields)
    await new Promise<void>((resolve, reject) => { batch.done.push({ resolve, reject }) })
  }
}
