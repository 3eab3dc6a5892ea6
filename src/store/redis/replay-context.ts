import type { ClientQueue } from '../outgoing-index.js'
import type { ReplayContext } from '../outgoing-replay.js'
import type { WriteOp } from '../write-queue.js'
import type { Script } from './scripts.js'
import type { RedisDeps } from './write-order.js'

export interface RedisReplayParts {
  /** The session mirrors (queue-mirrors.ts), by client id. */
  queues: Map<string, ClientQueue>
  /** The DROP script: deletes the entries the replay found expired or over a limit. */
  drop: Script
  /** Sends what the outbox's batches gathered, so that the drop does not overtake them. */
  writeNow: () => void
}

/**
 * The LevelDB store's replay (outgoing-replay.ts) run over one session's queue on Redis: its reads are HMGETs of the
 * queue's hash and its deletes one DROP script. Apart from outbox.ts because it only adapts the replay's
 * dependencies; the replay's logic stays shared by both stores.
 */
export function redisReplayContext (deps: RedisDeps, clientId: string, parts: RedisReplayParts): ReplayContext {
  const { redis, order, limits, drops, logger } = deps
  const { queues, drop, writeNow } = parts
  const [q, qm, qx, totals] = deps.keys.queueScriptKeys(clientId)
  return {
    limits,
    drops,
    logger,
    // a hash has no key order to walk: each run of keys is one HMGET
    reader: { readAscending: async (keys) => (await redis.hmgetBuffer(qm, ...keys)).map(value => value ?? undefined) },
    queue: { commit: async (ops: WriteOp[]) => { writeNow(); await order.track(drop([q, qm, qx, totals], ops.map(op => op.key))) } },
    current: id => queues.get(id),
    settle: (queue) => { if (queue.size === 0 && queues.get(queue.clientId) === queue) queues.delete(queue.clientId) }
  }
}
