import { sendJson } from '../admin/http.js'
import type { AdminRoute } from '../admin/routes.js'
import type { BrokerMetrics } from '../metrics/index.js'
import type { BusCounters } from './bus.js'
import type { NodeView } from './membership.js'
import type { RouteTable } from './route-table.js'

interface ClusterState {
  nodeId: string
  nodes: NodeView[]
  table: RouteTable
  counters: BusCounters
}

/**
 * GET /api/cluster: every node as the last heartbeat of this node read them from Redis (`items`, one row per node,
 * for the console's cluster panel), and this node's bus.
 */
export function clusterRoutes (state: () => ClusterState): AdminRoute[] {
  return [{
    method: 'GET',
    path: '/api/cluster',
    feature: 'cluster',
    handler: ({ res }) => {
      const { nodeId, nodes, table, counters } = state()
      const now = Date.now()
      const items = nodes.map(n => ({
        nodeId: n.nodeId,
        self: n.nodeId === nodeId,
        health: n.alive ? 'alive' : 'dead',
        brokerId: n.brokerId,
        clients: n.clients,
        listeners: n.listeners,
        version: n.version,
        startedAt: new Date(n.startedAt).toISOString(),
        lastHeartbeatAt: new Date(n.heartbeatAt).toISOString(),
        heartbeatAgeMs: Math.max(0, now - n.heartbeatAt),
        filters: n.nodeId === nodeId ? undefined : table.filterCount(n.nodeId)
      })).sort((a, b) => a.nodeId.localeCompare(b.nodeId))
      sendJson(res, 200, {
        nodeId,
        items,
        bus: { sent: counters.sent, unrouted: counters.unrouted, received: counters.received, pending: counters.pending, duplicates: counters.duplicates, reconnects: counters.reconnects, lagMs: counters.lagMs }
      })
    }
  }]
}

/** The cluster's gauges and counters on /metrics (this node's view). */
export function registerClusterMetrics (metrics: BrokerMetrics, state: { alive: () => number, counters: BusCounters & { droppedQos0: number }, reconnects: Record<string, number>, down: () => number }): void {
  const { counters, reconnects } = state
  metrics.gauge({ name: 'culex_cluster_nodes_alive', help: 'Nodes of the cluster alive at the last heartbeat, this one included.', collect () { this.set(state.alive()) } })
  metrics.gauge({ name: 'culex_cluster_bus_lag_seconds', help: "Age of the last message read from this node's Redis stream when it was read (0 when the stream is idle).", collect () { this.set(counters.lagMs / 1000) } })
  metrics.gauge({ name: 'culex_cluster_bus_pending_messages', help: 'Messages sent to other nodes that Redis has not confirmed yet (a Redis outage holds them here).', collect () { this.set(counters.pending) } })
  metrics.countersFrom('culex_cluster_bus_messages_total', "Stream entries this node sent to other nodes, sent to a node that had just left (unrouted), read from its own stream, dropped as read twice, and QoS 0 messages not sent because too many were waiting for Redis.", 'event', () => ({ sent: counters.sent, unrouted: counters.unrouted, received: counters.received, duplicate: counters.duplicates, dropped_qos0: counters.droppedQos0 }))
  metrics.gauge({ name: 'culex_cluster_redis_connections_down', help: "This node's connections to the cluster's Redis that are lost or do not answer a PING within cluster.redisPingTimeoutMs (/readyz says not ready meanwhile).", collect () { this.set(state.down()) } })
  metrics.countersFrom('culex_cluster_bus_reconnects_total', "Times a connection of this node to the cluster's Redis was lost and made again, by connection (the stream reader resumes from the last id it read).", 'connection', () => reconnects)
}
