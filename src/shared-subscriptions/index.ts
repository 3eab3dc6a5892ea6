/**
 * Shared subscriptions: `$share/<group>/<filter>` as a work queue (docs/shared-subscriptions.md).
 *
 *   createSharedSubscriptions(deps)
 *     checkShareName, noteSubscriber   authorizeSubscribe steps: refuse bad share names (first checks), note the
 *                                      subscriber of a granted $share/ filter (last step)
 *     start()                          after aedes.listen(): restores persistent members and durable queues
 *     close()                          when the broker stops, before aedes closes its clients
 *     routes                           GET /api/shared for the admin server's featureRoutes
 *     registerMetrics(metrics)         culex_shared_* counters and gauges (per share, and failures and lag per group)
 *     view()                           per group: members, in-flight, queue depth, counts
 *     useCluster(shareGroups)          cluster mode: groups owned by one node each, members on any node
 */
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import type { BrokerMetrics } from '../metrics/index.js'
import type { AdminRoute } from '../admin/routes.js'
import { sendJson } from '../admin/http.js'
import type { BrokerInternals } from '../protocol/aedes-internals.js'
import { createSharedHooks } from './hooks.js'
import type { SharedStore } from './store-wrap.js'
import type { DeadLetterEvent } from './types.js'
import type { Client } from 'aedes'
import { topicMatches } from '../protocol/topic.js'
import type { SharedCluster, SharedLocal } from './cluster-port.js'
import type { GroupView } from './engine.js'

export type { DeadLetterEvent, DeadLetterReason } from './types.js'

/** How the cluster takes the shared hooks' local side and gives back its own (Cluster.shareGroups). */
export type ClusterShareGroups = (local: SharedLocal<Client>) => SharedCluster<Client>
export type { GroupView } from './engine.js'

export interface SharedDeps {
  broker: BrokerInternals
  store: SharedStore
  config: Config['sharedSubscriptions']
  /** Which waiting message goes when a group queue is full (sessions.overflowPolicy). */
  overflowPolicy: 'dropOldest' | 'dropNewest'
  log: Logger
  /** A message the group gave up on (the dead-letter feature hooks in here). */
  onDeadLetter: (event: DeadLetterEvent) => void
}

export function createSharedSubscriptions (deps: SharedDeps) {
  const { config } = deps
  const hooks = createSharedHooks(deps.broker, deps.store, {
    strategyFor: group => config.groupStrategies[group] ?? config.strategy,
    backoffFor: group => ({ ...config.redeliveryBackoff, ...config.groupRedeliveryBackoff[group] }),
    ackTimeoutMs: config.ackTimeoutMs,
    maxDeliveries: config.maxDeliveries,
    redispatchRejected: config.redispatchRejected,
    maxInflightPerMember: config.maxInflightPerMember,
    limits: { maxQueuedMessages: config.maxQueuedMessages, maxQueuedBytes: config.maxQueuedBytes, overflowPolicy: deps.overflowPolicy },
    onDeadLetter: deps.onDeadLetter
  }, deps.log)
  const engine = hooks.engine
  const view = () => engine.view()
  /** Cluster mode: every group of the cluster, wherever it is owned (the metrics stay with the owner's). */
  let clusterViews: (() => Promise<GroupView[]>) | undefined

  const routes: AdminRoute[] = [{
    method: 'GET',
    path: '/api/shared',
    feature: 'shared',
    // `items` is what the console's feature panel renders, one row per group.
    handler: async ({ res }) => sendJson(res, 200, { items: clusterViews === undefined ? view() : await clusterViews(), totals: { ...engine.totals } })
  }]

  const registerMetrics = (metrics: BrokerMetrics): void => {
    metrics.countersFrom('culex_shared_messages_total', 'Shared-subscription deliveries and what became of the messages, by event.', 'event', () => engine.totals)
    const perGroup = (name: string, help: string, read: (g: GroupView) => number): void => {
      metrics.gauge({
        name,
        help,
        labelNames: ['share'],
        collect () {
          this.reset()
          for (const g of view()) this.set({ share: g.share }, read(g))
        }
      })
    }
    perGroup('culex_shared_queued_messages', 'Messages waiting in a shared subscription\'s queue.', g => g.queued)
    perGroup('culex_shared_inflight_messages', 'Messages of a shared subscription delivered and not acknowledged yet.', g => g.inflight)
    perGroup('culex_shared_members_online', 'Connected members of a shared subscription.', g => g.members.filter(m => m.online).length)
    perGroup('culex_shared_members', 'Members of a shared subscription, offline persistent ones included.', g => g.members.length)
    perGroup('culex_shared_delayed_messages', 'Messages of a shared subscription waiting out their retry backoff.', g => g.delayed)

    // By share name (the filters of one name summed): rate() of these says which group's consumers fail.
    const byName = (combine: (a: number, b: number) => number, read: (g: GroupView) => number): Map<string, number> => {
      const out = new Map<string, number>()
      for (const g of view()) {
        const seen = out.get(g.group)
        out.set(g.group, seen === undefined ? read(g) : combine(seen, read(g)))
      }
      return out
    }
    const failures = (name: string, help: string, read: (g: GroupView) => number): void => {
      metrics.counter({
        name,
        help,
        labelNames: ['group'],
        collect () {
          this.reset()
          for (const [group, n] of byName((a, b) => a + b, read)) this.inc({ group }, n)
        }
      })
    }
    failures('culex_shared_ack_timeouts_total', 'Shared deliveries not acknowledged within sharedSubscriptions.ackTimeoutMs, by group.', g => g.ackTimeouts)
    failures('culex_shared_rejections_total', 'Shared deliveries the member refused (MQTT 5 reason code >= 0x80; none with MQTT 3.1.1), by group.', g => g.rejections)
    failures('culex_shared_redeliveries_total', 'Shared messages delivered again after a timeout, refusal or disconnect, by group.', g => g.redelivered)
    failures('culex_shared_dead_letters_total', 'Shared messages given up (max-deliveries, queue-full, no-members, expired), by group.', g => g.deadLettered)
    metrics.gauge({
      name: 'culex_shared_oldest_unacked_seconds',
      help: 'Age of the oldest message of a group not acknowledged yet (waiting, delayed or in flight), by group.',
      labelNames: ['group'],
      collect () {
        this.reset()
        for (const [group, ms] of byName(Math.max, g => g.oldestUnackedMs)) this.set({ group }, ms / 1000)
      }
    })
  }

  return {
    /** Cluster mode: each group runs on the node owning it (src/cluster/shared-groups.ts). */
    useCluster: (cluster: ClusterShareGroups): void => {
      const shared = cluster(hooks.local)
      hooks.useCluster(shared)
      clusterViews = shared.views
    },
    /** Whether a group of this node has a filter matching `topic` (its queue is written after a publish's enqueue). */
    hasGroupFor: (topic: string): boolean => {
      for (const group of engine.groups()) if (topicMatches(group.share.filter, topic)) return true
      return false
    },
    checkShareName: hooks.checkShareName,
    noteSubscriber: hooks.noteSubscriber,
    start: hooks.start,
    close: hooks.close,
    routes,
    registerMetrics,
    view
  }
}
