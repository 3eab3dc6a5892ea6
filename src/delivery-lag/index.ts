/**
 * Delivery lag: how long subscribers take to acknowledge what they are sent (docs/shared-subscriptions.md,
 * "Consumer lag").
 *
 *   createDeliveryLag()
 *     watchConnection              preConnect step: tracks the connection's unacknowledged QoS 1/2 deliveries
 *     registerMetrics(metrics)     culex_delivery_ack_seconds{qos,group}, culex_session_oldest_unacked_seconds{client_id}
 *     routes                       GET /api/lag for the admin server's featureRoutes (the console's lag panel)
 */
import type { AdminRoute } from '../admin/routes.js'
import { sendJson } from '../admin/http.js'
import type { BrokerMetrics } from '../metrics/index.js'
import { createLagHooks } from './hooks.js'

export type { SessionLag } from './hooks.js'

/** Sessions with a client_id label on the oldest-unacknowledged gauge: the slowest ones only, so its series stay few. */
export const TOP_SESSIONS = 10
/** Rows of GET /api/lag. */
const API_SESSIONS = 50

export function createDeliveryLag () {
  const hooks = createLagHooks()

  const registerMetrics = (metrics: BrokerMetrics): void => {
    hooks.histogram.register(metrics.registry)
    metrics.gauge({
      name: 'culex_session_oldest_unacked_seconds',
      help: `Age of the oldest message a connected client has not acknowledged yet, for the ${TOP_SESSIONS} clients whose oldest one is oldest.`,
      labelNames: ['client_id'],
      collect () {
        this.reset()
        for (const s of hooks.sessions(TOP_SESSIONS)) this.set({ client_id: s.clientId }, s.oldestUnackedMs / 1000)
      }
    })
  }

  const routes: AdminRoute[] = [{
    method: 'GET',
    path: '/api/lag',
    feature: 'lag',
    // `items` is what the console's feature panel renders: the connected clients with the oldest unacknowledged messages.
    handler: ({ res }) => sendJson(res, 200, { items: hooks.sessions(API_SESSIONS) })
  }]

  return { watchConnection: hooks.watchConnection, registerMetrics, routes, sessions: hooks.sessions }
}
