import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { bind } from '../listeners/bind.js'
import type { Logger } from '../log/logger.js'
import { tokenChecker } from './auth.js'
import { ApiError, sendError, sendJson } from './http.js'
import { findRoute, type AdminRoute } from './router.js'

export type { AdminRoute, RouteContext } from './router.js'

export interface HealthSource {
  /** True once every listener is bound and the store is open, false again while shutting down. */
  ready: () => boolean
  /** Why the broker cannot serve although it started (its cluster's Redis is unreachable, say); shown by /readyz. */
  problem?: () => string | undefined
}

export interface AdminServer {
  readonly host: string
  readonly port: number
  close: () => Promise<void>
}

export interface AdminServerOptions {
  host: string
  port: number
  /** Empty: no authentication. */
  authToken: string
}

/** /healthz and /readyz: always open, for Docker and Kubernetes probes. */
export function healthRoutes (health: HealthSource): AdminRoute[] {
  return [
    { method: 'GET', path: '/healthz', public: true, handler: ({ res }) => sendJson(res, 200, { status: 'ok' }) },
    {
      method: 'GET',
      path: '/readyz',
      public: true,
      handler: ({ res }) => {
        const problem = health.problem?.()
        if (health.ready() && problem === undefined) sendJson(res, 200, { status: 'ready' })
        else sendJson(res, 503, { status: 'not ready', ...(problem === undefined ? {} : { reason: problem }) })
      }
    }
  ]
}

/**
 * The HTTP admin server: one routes table (health, metrics, the JSON API, the console, and whatever routes other
 * features add), the admin token checked on every route that is not public, and JSON errors.
 */
export async function startAdminServer (opts: AdminServerOptions, routes: readonly AdminRoute[], log: Logger): Promise<AdminServer> {
  const authorized = tokenChecker(opts.authToken)
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin.invalid')
    const method = req.method ?? 'GET'
    const run = async (): Promise<void> => {
      const { route, params } = findRoute(routes, method, url.pathname)
      if (route.public !== true && !authorized(req)) throw new ApiError('unauthorized', 'this admin server needs its token: Authorization: Bearer <admin.authToken>')
      await route.handler({ req, res, params, query: url.searchParams })
    }
    run().catch((err: unknown) => {
      const apiErr = err instanceof ApiError ? err : new ApiError('internal', 'internal error (see the broker log)')
      if (!(err instanceof ApiError)) log.error({ err, method, path: url.pathname }, 'admin request failed')
      if (res.headersSent) {
        res.destroy()
        return
      }
      sendError(res, apiErr, apiErr.code === 'unauthorized' ? { 'www-authenticate': 'Bearer realm="culex"' } : {})
    })
  })
  const address: AddressInfo = await bind(server, 'admin', opts.host, opts.port)
  return {
    host: address.address,
    port: address.port,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}
