import { sendJson } from '../admin/http.js'
import type { AdminRoute } from '../admin/routes.js'
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
