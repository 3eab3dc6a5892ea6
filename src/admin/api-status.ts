import type { AdminDeps } from './deps.js'
import { sendJson, sendText } from './http.js'
import type { AdminRoute } from './router.js'

/** /metrics (Prometheus), /api/stats (every count as JSON), /api/auth and /api/info (what the console needs to start). */
export function statusRoutes (deps: AdminDeps, features: () => string[]): AdminRoute[] {
  const { metrics } = deps
  return [
    {
      method: 'GET',
      path: '/metrics',
      handler: async ({ res }) => sendText(res, 200, metrics.registry.contentType, await metrics.render())
    },
    {
      method: 'GET',
      path: '/api/stats',
      handler: async ({ res }) => sendJson(res, 200, await metrics.snapshot())
    },
    {
      // Public, so the console knows whether to ask for the token before it calls anything that needs it.
      method: 'GET',
      path: '/api/auth',
      public: true,
      handler: ({ res }) => sendJson(res, 200, { required: deps.authRequired })
    },
    {
      method: 'GET',
      path: '/api/info',
      handler: ({ res }) => sendJson(res, 200, {
        name: 'culex',
        version: deps.version,
        brokerId: deps.aedes.id,
        startedAt: new Date(metrics.totals.startedAt).toISOString(),
        uptimeSeconds: Math.floor((Date.now() - metrics.totals.startedAt) / 1000),
        authRequired: deps.authRequired,
        sysIntervalMs: deps.sysIntervalMs,
        listeners: deps.listeners(),
        features: features()
      })
    }
  ]
}
