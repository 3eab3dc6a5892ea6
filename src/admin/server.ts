import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { bind } from '../listeners/bind.js'

export interface HealthSource {
  /** True once every listener is bound and the store is open, false again while shutting down. */
  ready: () => boolean
}

export interface AdminServer {
  readonly host: string
  readonly port: number
  close: () => Promise<void>
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void

function sendJson (res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(JSON.stringify(body))
}

/** The HTTP admin server: health for now (metrics and the API build on the same routes table). */
export async function startAdminServer (opts: { host: string, port: number }, health: HealthSource): Promise<AdminServer> {
  const routes: Record<string, Handler> = {
    'GET /healthz': (_req, res) => sendJson(res, 200, { status: 'ok' }),
    'GET /readyz': (_req, res) => health.ready()
      ? sendJson(res, 200, { status: 'ready' })
      : sendJson(res, 503, { status: 'not ready' })
  }
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const handler = routes[`${req.method ?? 'GET'} ${path}`]
    if (handler !== undefined) handler(req, res)
    else sendJson(res, 404, { error: { code: 'not_found', message: `no route ${req.method ?? ''} ${path}` } })
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
