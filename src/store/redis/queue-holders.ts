import type { Redis } from 'ioredis'
import { defineScript, type Script } from './scripts.js'

/** This node as the holder of the sessions connected to it (cluster mode). */
export interface Holder {
  nodeId: string
  /** The run of the node (its aedes broker id): what its liveness key holds while it is alive. */
  brokerId: string
  /** The prefix of the nodes' liveness keys (`<prefix><node id>` holds the node's live run). */
  alivePrefix: string
  /** The connection's place in the cluster-wide order of connections (its generation): the newer one holds. */
  generationOf: (client: object) => Promise<number>
}

/**
 * Claims KEYS[1] (a qx) for node ARGV[1], run ARGV[2], connection ARGV[3] of generation ARGV[4], unless a newer
 * connection of the client (a higher generation, on any node) has claimed it: of two connections made at once on two
 * nodes, the one that loses the take-over never holds the session once the other has claimed it.
 */
const CLAIM = `
local g = redis.call('HGET', KEYS[1], 'hg')
if g and tonumber(g) > tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'hb', ARGV[2], 'ht', ARGV[3], 'hg', ARGV[4])
return 1
`

/** Deletes the claim KEYS[1] (a qx) if it is still the one ARGV names (run, connection); its generation stays. */
const RELEASE = `
local v = redis.call('HMGET', KEYS[1], 'hb', 'ht')
if v[1] == ARGV[1] and v[2] == ARGV[2] then redis.call('HDEL', KEYS[1], 'h', 'hb', 'ht') end
return 0
`

/**
 * Cluster mode: which node holds a persistent session's connection, kept in its queue index (`qx`: `h` node id, `hb`
 * run, `ht` connection on that run, `hg` its generation). The node claims it before it reads the queue to replay it; every enqueue after
 * the claim names the node to its origin (queue-scripts.ts), which sends it the message whatever it knows of the
 * node's topic filters: a message queued before the claim is in the replay, one after it reaches the node live.
 * Without it, what a third node published before it had read the resumed session's filters stayed in the queue
 * until the next connection. The claim goes when that connection ends (a newer one's claim stays).
 */
export class QueueHolders {
  readonly #release: Script
  readonly #claim: Script
  #holder: Holder | undefined

  constructor (redis: Redis) {
    this.#release = defineScript(redis, 'culexReleaseHolder', RELEASE)
    this.#claim = defineScript(redis, 'culexClaimHolder', CLAIM)
  }

  set holder (holder: Holder | undefined) {
    this.#holder = holder
  }

  get alivePrefix (): string {
    return this.#holder?.alivePrefix ?? ''
  }

  /** The connection's generation, once known; undefined when this node is no cluster node. */
  async generationOf (client: object): Promise<number | undefined> {
    return await this.#holder?.generationOf(client)
  }

  /**
   * The claim of the session `qx` for connection `token` of this run, of `generation`, sent now: the caller's read of
   * the queue, sent after it on the same connection, is applied after it.
   */
  claim (qx: string, token: number, generation: number): Promise<unknown> | undefined {
    const holder = this.#holder
    if (holder === undefined) return undefined
    return this.#claim([qx], [holder.nodeId, holder.brokerId, token, generation])
  }

  release (qx: string, token: number): Promise<unknown> | undefined {
    const holder = this.#holder
    if (holder === undefined) return undefined
    return this.#release([qx], [holder.brokerId, token])
  }
}
