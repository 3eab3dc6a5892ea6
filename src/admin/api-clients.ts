import type { Client } from 'aedes'
import { connectionInfo } from '../listeners/connection-info.js'
import { remoteAddress } from '../log/client-log.js'
import { connectedClient, connectedClients, kickClient, sessionConnected, type AdminDeps } from './deps.js'
import { ApiError, paginate, sendJson } from './http.js'
import type { AdminRoute } from './router.js'

type Subscriptions = Record<string, { qos: number }>

function subscriptionsOf (client: Client): Array<{ topic: string, qos: number }> {
  const subs = (client as Client & { subscriptions?: Subscriptions }).subscriptions ?? {}
  return Object.entries(subs).map(([topic, s]) => ({ topic, qos: s.qos })).sort((a, b) => a.topic.localeCompare(b.topic))
}

/** One connected client as the API lists it. */
export function clientSummary (deps: AdminDeps, client: Client): Record<string, unknown> {
  const wire = deps.metrics.connection(client)
  return {
    clientId: client.id,
    username: deps.usernameOf(client) ?? null,
    connected: true,
    clean: client.clean,
    protocolVersion: client.version,
    remote: remoteAddress(client) ?? null,
    listener: connectionInfo(client.conn)?.listener ?? null,
    connectedAt: wire === undefined ? null : new Date(wire.openedAt).toISOString(),
    subscriptions: subscriptionsOf(client).length,
    inflight: { out: wire?.inflightOut.size ?? 0, in: wire?.inflightIn.size ?? 0 },
    messages: { in: wire?.messagesIn ?? 0, out: wire?.messagesOut ?? 0 },
    bytes: { in: wire?.bytesIn ?? 0, out: wire?.bytesOut ?? 0 }
  }
}

function prefixFilter (query: URLSearchParams): (id: string) => boolean {
  const prefix = query.get('prefix') ?? ''
  return id => id.startsWith(prefix)
}

async function sessionSummary (deps: AdminDeps, clientId: string): Promise<Record<string, unknown> | undefined> {
  const info = await deps.store.sessionInfo(clientId)
  if (info === undefined) return undefined
  return {
    clientId,
    connected: sessionConnected(deps.aedes, info),
    subscriptions: info.subscriptions,
    queued: info.queued,
    inflight: info.inflight,
    queuedBytes: info.queuedBytes,
    oldestQueuedAt: info.oldestQueuedAt === undefined ? null : new Date(info.oldestQueuedAt).toISOString()
  }
}

/** Connected clients (list, show, kick) and persistent sessions (list, show, purge). */
export function clientRoutes (deps: AdminDeps): AdminRoute[] {
  const { aedes, store, log } = deps
  return [
    {
      method: 'GET',
      path: '/api/clients',
      handler: ({ res, query }) => {
        const wanted = prefixFilter(query)
        const clients = connectedClients(aedes).filter(c => wanted(c.id)).sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
        const page = paginate(clients, query)
        sendJson(res, 200, { ...page, items: page.items.map(c => clientSummary(deps, c)) })
      }
    },
    {
      method: 'GET',
      path: '/api/clients/:id',
      handler: async ({ res, params }) => {
        const client = connectedClient(aedes, params.id)
        const session = await sessionSummary(deps, params.id)
        if (client === undefined && session === undefined) throw new ApiError('not_found', `no connected client and no persistent session with id ${JSON.stringify(params.id)}`)
        const body = client === undefined
          // in a cluster, a persistent session's client may be connected to another node
          ? { clientId: params.id, connected: session?.connected === true }
          : { ...clientSummary(deps, client), subscriptions: subscriptionsOf(client) }
        sendJson(res, 200, { ...body, session: session ?? null })
      }
    },
    {
      method: 'DELETE',
      path: '/api/clients/:id',
      handler: async ({ res, params }) => {
        const kicked = await kickClient(deps, params.id)
        if (kicked === undefined) throw new ApiError('not_found', `no connected client with id ${JSON.stringify(params.id)}`)
        if ('clean' in kicked) log.info({ clientId: params.id, clean: kicked.clean }, 'client kicked')
        sendJson(res, 200, { clientId: params.id, kicked: true })
      }
    },
    {
      method: 'GET',
      path: '/api/sessions',
      handler: async ({ res, query }) => {
        const page = paginate((await store.listSessions()).filter(prefixFilter(query)), query)
        const items = []
        for (const id of page.items) {
          const s = await sessionSummary(deps, id)
          if (s !== undefined) items.push({ ...s, subscriptions: (s.subscriptions as unknown[]).length })
        }
        sendJson(res, 200, { ...page, items })
      }
    },
    {
      method: 'GET',
      path: '/api/sessions/:id',
      handler: async ({ res, params }) => {
        const session = await sessionSummary(deps, params.id)
        if (session === undefined) throw new ApiError('not_found', `no persistent session with id ${JSON.stringify(params.id)}`)
        sendJson(res, 200, session)
      }
    },
    {
      method: 'DELETE',
      path: '/api/sessions/:id',
      handler: async ({ res, params }) => {
        if (await store.sessionInfo(params.id) === undefined) throw new ApiError('not_found', `no persistent session with id ${JSON.stringify(params.id)}`)
        // The client goes first, wherever it is connected: while it is, its node would keep writing its session back.
        const kicked = await kickClient(deps, params.id) !== undefined
        const purged = await store.purgeSession(params.id)
        log.info({ clientId: params.id, kicked }, 'session purged')
        sendJson(res, 200, { clientId: params.id, purged, kicked })
      }
    }
  ]
}
