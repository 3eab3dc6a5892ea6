import { clientRoutes } from './api-clients.js'
import { statusRoutes } from './api-status.js'
import { topicRoutes } from './api-topics.js'
import { consoleRoutes } from './console-routes.js'
import type { AdminDeps } from './deps.js'
import type { AdminRoute } from './router.js'
import { healthRoutes, type HealthSource } from './server.js'

export { listenerInfo, type AdminDeps, type AdminStore, type ListenerInfo } from './deps.js'
export type { AdminRoute } from './router.js'

/**
 * The admin server's routes table. `extra` is where other features plug in: the shared-subscription issue adds
 * `GET /api/shared` (feature 'shared'), the dead-letter issue its list/show/replay/purge routes (feature
 * 'dead-letters'); `GET /api/info` lists the features present so the console shows their panels.
 */
export function adminRoutes (deps: AdminDeps, health: HealthSource, extra: readonly AdminRoute[] = []): AdminRoute[] {
  const routes: AdminRoute[] = []
  const features = (): string[] => [...new Set(routes.flatMap(r => r.feature === undefined ? [] : [r.feature]))]
  routes.push(
    ...healthRoutes(health),
    ...statusRoutes(deps, features),
    ...clientRoutes(deps),
    ...topicRoutes(deps),
    ...extra,
    ...consoleRoutes()
  )
  return routes
}
