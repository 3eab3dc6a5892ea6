import type { Redis } from 'ioredis'
import { CulexError } from '../errors.js'
import type { Logger } from '../log/logger.js'
import { BUS_FEATURES } from './codec.js'
import type { ClusterKeys, NodeRecord } from './keys.js'

export interface NodeView extends NodeRecord {
  /** false once the node has missed its heartbeats for cluster.nodeTimeoutMs, until a survivor removes it. */
  alive: boolean
}

export interface MembershipOptions {
  nodeId: string
  keys: ClusterKeys
  brokerId: string
  heartbeatIntervalMs: number
  nodeTimeoutMs: number
  version: string
  /** What the node's registration says of it now (listeners, clients). */
  describe: () => Pick<NodeRecord, 'listeners' | 'clients'>
}

/**
 * Cluster membership in Redis: each node's registration (a hash entry) and its liveness (a key that expires after
 * cluster.nodeTimeoutMs unless the node's heartbeat renews it, so Redis' clock decides, not the nodes'). Each
 * heartbeat also reads every registration: a node whose key has expired is dead, for every survivor at once; one of
 * them, holding a lease, removes it and hands its broker id to the will reaper.
 */
/** Removes a dead node's keys if it is still dead and still the same run; 1 if it did. */
const REMOVE_NODE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local record = redis.call('HGET', KEYS[2], ARGV[1])
if not record or cjson.decode(record).brokerId ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4], KEYS[5])
redis.call('SADD', KEYS[6], ARGV[1] .. ' ' .. ARGV[2])
return 1
`

type RemoveNode = (...args: string[]) => Promise<number>

export function createMembership (redis: Redis, opts: MembershipOptions, log: Logger) {
  const { keys } = opts
  redis.defineCommand('culexRemoveNode', { numberOfKeys: 6, lua: REMOVE_NODE })
  const startedAt = Date.now()
  const record = (): NodeRecord => ({
    nodeId: opts.nodeId,
    brokerId: opts.brokerId,
    ...opts.describe(),
    startedAt,
    heartbeatAt: Date.now(),
    version: opts.version,
    bus: BUS_FEATURES
  })
  let view = new Map<string, NodeView>()

  /**
   * Registers this run of the node. A live registration of the same node id by another run is waited out (a node
   * restarted after a crash finds its former run's key until it expires); one still renewed after that is another
   * process with the same id.
   */
  const register = async (): Promise<void> => {
    const deadline = Date.now() + opts.nodeTimeoutMs + opts.heartbeatIntervalMs
    for (let warned = false; ;) {
      const holder = await redis.get(keys.alive(opts.nodeId))
      if (holder === null || holder === opts.brokerId) break
      if (Date.now() > deadline) throw new CulexError('ERR_CLUSTER_NODE_ID_IN_USE', `cluster node id ${opts.nodeId} is in use by a running node (broker ${holder})`)
      if (!warned) log.warn({ nodeId: opts.nodeId, holder }, 'cluster node id still registered by another run; waiting for it to lapse')
      warned = true
      await new Promise(resolve => setTimeout(resolve, opts.heartbeatIntervalMs))
    }
    const former = await redis.hget(keys.nodes, opts.nodeId)
    const tx = redis.multi()
    // The clients of the former run of this node id are gone: their wills are due.
    if (former !== null) {
      const formerBroker = (JSON.parse(former) as NodeRecord).brokerId
      if (formerBroker !== opts.brokerId) tx.sadd(keys.orphans, `${opts.nodeId} ${formerBroker}`)
    }
    await tx
      .set(keys.alive(opts.nodeId), opts.brokerId, 'PX', opts.nodeTimeoutMs)
      .hset(keys.nodes, opts.nodeId, JSON.stringify(record()))
      .del(keys.stream(opts.nodeId))
      .exec()
    await openInbox()
  }

  /**
   * The node's stream, made by the node itself: the others add to it only if it exists (NOMKSTREAM), so the stream
   * of a node that left or was removed is never made again by a message sent to it late. Its first entry is of no
   * kind the reader knows, and is skipped.
   */
  const openInbox = async (): Promise<void> => {
    await redis.xadd(keys.stream(opts.nodeId), '*', 'open', opts.nodeId)
  }

  /**
   * One heartbeat: renews this node, then reads every node. Returns the nodes found dead, whether this node's own
   * filters were removed meanwhile (it had been declared dead: it publishes them again), and whether its own
   * liveness had lapsed (the others took it for dead, whether or not one removed it yet).
   */
  const beat = async (): Promise<{ dead: NodeView[], lostFilters: boolean, lapsed: boolean, versions: Map<string, number> }> => {
    const renewed = await redis.multi()
      .set(keys.alive(opts.nodeId), opts.brokerId, 'PX', opts.nodeTimeoutMs, 'GET')
      .hset(keys.nodes, opts.nodeId, JSON.stringify(record()))
      .hget(keys.filterVersions, opts.nodeId)
      .hgetall(keys.nodes)
      .hgetall(keys.filterVersions)
      .exec()
    if (renewed === null) throw new Error('cluster heartbeat transaction aborted')
    for (const [err] of renewed) if (err !== null) throw err
    const lapsed = renewed[0][1] !== opts.brokerId
    const lostFilters = renewed[2][1] === null
    const records = Object.values(renewed[3][1] as Record<string, string>).map(json => JSON.parse(json) as NodeRecord)
    const versions = new Map(Object.entries(renewed[4][1] as Record<string, string>).map(([id, v]) => [id, Number(v)]))
    const holders = records.length === 0 ? [] : await redis.mget(records.map(r => keys.alive(r.nodeId)))
    const next = new Map<string, NodeView>()
    records.forEach((r, i) => next.set(r.nodeId, { ...r, alive: r.nodeId === opts.nodeId || holders[i] === r.brokerId }))
    view = next
    return { dead: [...next.values()].filter(n => !n.alive), lostFilters, lapsed, versions }
  }

  /**
   * Removes a dead node if this node wins the lease: its registration, filters and stream go, its broker id joins
   * the orphans whose wills are due. false: another survivor has it.
   */
  const remove = async (node: NodeView): Promise<boolean> => {
    const won = await redis.set(keys.reaper(node.nodeId), opts.nodeId, 'PX', opts.nodeTimeoutMs, 'NX')
    if (won === null) return false
    // Checked again in the same script that removes it: the node may have come back, or a new run of the same id
    // registered since this node read the registrations (removing that one would delete a live node's stream).
    const removed = await (redis as Redis & { culexRemoveNode: RemoveNode }).culexRemoveNode(
      keys.alive(node.nodeId), keys.nodes, keys.filterVersions, keys.filters(node.nodeId), keys.stream(node.nodeId), keys.orphans,
      node.nodeId, node.brokerId)
    if (removed !== 1) return false
    log.warn({ nodeId: node.nodeId, brokerId: node.brokerId, lastHeartbeatAt: new Date(node.heartbeatAt).toISOString() }, 'cluster node dead; removed')
    return true
  }

  /** Dead runs whose wills are due, each handed to this node only while it holds that run's lease. */
  const claimOrphans = async (): Promise<Array<{ entry: string, brokerId: string }>> => {
    const claimed: Array<{ entry: string, brokerId: string }> = []
    for (const entry of await redis.smembers(keys.orphans)) {
      const brokerId = entry.split(' ')[1]
      if (brokerId === opts.brokerId) {
        // this very run, removed while it was cut off from Redis: its clients are still connected here
        await redis.srem(keys.orphans, entry)
        continue
      }
      if (await redis.set(keys.reaper(`broker:${brokerId}`), opts.nodeId, 'PX', Math.max(30_000, opts.nodeTimeoutMs), 'NX') !== null) claimed.push({ entry, brokerId })
    }
    return claimed
  }

  const settled = async (entry: string): Promise<void> => {
    await redis.srem(keys.orphans, entry)
  }

  /** Leaving on purpose: the others stop routing to it at once, instead of after cluster.nodeTimeoutMs. */
  const leave = async (): Promise<void> => {
    await redis.multi()
      .del(keys.alive(opts.nodeId), keys.filters(opts.nodeId), keys.stream(opts.nodeId))
      .hdel(keys.nodes, opts.nodeId)
      .hdel(keys.filterVersions, opts.nodeId)
      // read as "this node's filters changed": the others read them again, find none, and stop routing here
      .publish(keys.filterChanges, `${opts.nodeId}\n0\n*`)
      .exec()
  }

  return { register, openInbox, beat, remove, claimOrphans, settled, leave, nodes: () => [...view.values()] }
}

export type Membership = ReturnType<typeof createMembership>
