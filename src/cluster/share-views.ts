import type { Redis } from 'ioredis'
import type { GroupView } from '../shared-subscriptions/engine.js'

export interface ShareViewsOptions {
  /** The key a node writes its groups' views to. */
  key: (nodeId: string) => string
  nodeId: string
  /** cluster.nodeTimeoutMs: the views of a node that stopped beating lapse with it. */
  ttlMs: number
  /** The other nodes alive. */
  others: () => string[]
}

/**
 * GET /api/shared on every node (docs/cluster.md, "Shared subscriptions across nodes"), the way /api/cluster shows
 * every node: each owner writes the views of the groups it owns with every heartbeat, one key per node that lapses
 * after cluster.nodeTimeoutMs, and a node answering reads the other live nodes' keys (one MGET) and adds its own
 * groups as they are now. What another node owns is shown as of its owner's last heartbeat.
 */
export function createShareViews (redis: Redis, opts: ShareViewsOptions) {
  let wroteNone = true
  return {
    /** With each heartbeat: this node's groups (owned here), or nothing when it owns none. */
    publish: async (owned: GroupView[]): Promise<void> => {
      if (owned.length === 0) {
        if (!wroteNone) await redis.del(opts.key(opts.nodeId))
        wroteNone = true
        return
      }
      await redis.set(opts.key(opts.nodeId), JSON.stringify(owned), 'PX', opts.ttlMs)
      wroteNone = false
    },
    /** Every group of the cluster: `owned` (this node's, as they are), then the others' as published. */
    all: async (owned: GroupView[]): Promise<GroupView[]> => {
      const ids = opts.others()
      const published = ids.length === 0 ? [] : await redis.mget(ids.map(opts.key))
      const out = new Map(owned.map(v => [v.share, v]))
      // a group changing owners may be in two nodes' views for a heartbeat: the first one read is shown
      for (const json of published) {
        if (json === null) continue
        for (const v of JSON.parse(json) as GroupView[]) if (!out.has(v.share)) out.set(v.share, v)
      }
      return [...out.values()].sort((a, b) => a.share < b.share ? -1 : a.share > b.share ? 1 : 0)
    },
    /** Leaving: the views go at once rather than after the timeout. */
    forget: async (): Promise<void> => { await redis.del(opts.key(opts.nodeId)) }
  }
}

export type ShareViews = ReturnType<typeof createShareViews>
