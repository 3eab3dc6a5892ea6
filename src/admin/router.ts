import type http from 'node:http'
import { ApiError } from './http.js'

export interface RouteContext {
  req: http.IncomingMessage
  res: http.ServerResponse
  /** Path parameters, URL-decoded: `:name` is one path segment, `*name` the rest of the path. */
  params: Record<string, string>
  query: URLSearchParams
}

/**
 * One entry of the admin server's routes table. Features add their own entries (the shared-subscription and
 * dead-letter issues plug in `GET /api/shared`, `/api/dead-letters...` this way) and tag them with `feature`, which
 * `GET /api/info` lists so the console shows their panels.
 */
export interface AdminRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** e.g. `/api/clients/:id` or `/api/retained/*topic`. */
  path: string
  /** Served without the admin token (health checks, the console's static files). */
  public?: boolean
  feature?: string
  handler: (ctx: RouteContext) => void | Promise<void>
}

export interface RouteMatch { route: AdminRoute, params: Record<string, string> }

function decode (segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    throw new ApiError('bad_request', `malformed URL encoding in ${JSON.stringify(segment)}`)
  }
}

function matchPath (pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/')
  const got = path.split('/')
  const params: Record<string, string> = {}
  for (let i = 0; i < want.length; i++) {
    const w = want[i]
    if (w.startsWith('*')) {
      if (i >= got.length) return undefined
      const rest = got.slice(i).map(decode).join('/')
      if (rest === '') return undefined
      params[w.slice(1)] = rest
      return params
    }
    if (i >= got.length) return undefined
    if (w.startsWith(':')) {
      if (got[i] === '') return undefined
      params[w.slice(1)] = decode(got[i])
    } else if (w !== got[i]) {
      return undefined
    }
  }
  return want.length === got.length ? params : undefined
}

/** The route for a request, or an ApiError: 404 for an unknown path, 405 for a known path and another method. */
export function findRoute (routes: readonly AdminRoute[], method: string, path: string): RouteMatch {
  let pathKnown = false
  for (const route of routes) {
    const params = matchPath(route.path, path)
    if (params === undefined) continue
    if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params }
    pathKnown = true
  }
  if (pathKnown) throw new ApiError('method_not_allowed', `${method} is not allowed on ${path}`)
  throw new ApiError('not_found', `no route ${method} ${path}`)
}
