import { filterProblem } from '../protocol/topic.js'
import type { Client, PublishPacket } from 'aedes'
import { connectedClient, connectedClients, sessionConnected, type AdminDeps } from './deps.js'
import { ApiError, intParam, paginate, payloadJson, sendJson } from './http.js'
import type { AdminRoute } from './router.js'


export function topicProblem (topic: string): string | undefined {
  if (topic === '') return 'must not be empty'
  if (topic.includes('+') || topic.includes('#')) return 'must not contain wildcards'
  return topic.includes('\u0000') ? 'must not contain U+0000' : undefined
}

async function readRetained (deps: AdminDeps, filter: string, max: number): Promise<Array<Record<string, unknown>>> {
  const stream = deps.store.createRetainedStreamCombi([filter])
  const found: Array<Record<string, unknown>> = []
  try {
    for await (const packet of stream as AsyncIterable<Record<string, unknown>>) {
      found.push(packet)
      if (found.length >= max) break
    }
  } finally {
    stream.destroy()
  }
  return found
}

/** Subscriptions of connected clients and offline persistent sessions; retained messages (list, delete). */
export function topicRoutes (deps: AdminDeps): AdminRoute[] {
  const { aedes, store, log } = deps
  return [
    {
      method: 'GET',
      path: '/api/subscriptions',
      handler: async ({ res, query }) => {
        const prefix = query.get('prefix') ?? ''
        const topic = query.get('topic')
        const rows: Array<{ clientId: string, topic: string, qos: number, connected: boolean }> = []
        for (const client of connectedClients(aedes)) {
          if (!client.id.startsWith(prefix)) continue
          const subs = (client as Client & { subscriptions?: Record<string, { qos: number }> }).subscriptions ?? {}
          for (const [t, s] of Object.entries(subs)) rows.push({ clientId: client.id, topic: t, qos: s.qos, connected: true })
        }
        const ids = await store.listSessions()
        for (let i = 0; i < ids.length; i++) {
          const id = ids[i]
          if (i % 1000 === 999) await new Promise(resolve => setImmediate(resolve))
          if (!id.startsWith(prefix) || connectedClient(aedes, id) !== undefined) continue
          const info = await store.sessionInfo(id)
          // in a cluster, its client may be connected to another node
          const connected = info !== undefined && sessionConnected(aedes, info)
          for (const s of info?.subscriptions ?? []) rows.push({ clientId: id, topic: s.topic, qos: s.qos, connected })
        }
        const wanted = topic === null ? rows : rows.filter(r => r.topic === topic)
        wanted.sort((a, b) => a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : a.topic < b.topic ? -1 : 1)
        sendJson(res, 200, paginate(wanted, query))
      }
    },
    {
      method: 'GET',
      path: '/api/retained',
      handler: async ({ res, query }) => {
        const filter = query.get('topic') ?? '#'
        const problem = filterProblem(filter)
        if (problem !== undefined) throw new ApiError('bad_request', `topic filter ${JSON.stringify(filter)} ${problem}`)
        const limit = intParam(query, 'limit', 100, 1, 1000)
        const found = await readRetained(deps, filter, limit + 1)
        const items = found.slice(0, limit).map(p => ({
          topic: String(p.topic),
          qos: Number(p.qos ?? 0),
          ...payloadJson(p.payload)
        }))
        sendJson(res, 200, { items, filter, limit, truncated: found.length > limit })
      }
    },
    {
      method: 'DELETE',
      path: '/api/retained/*topic',
      handler: async ({ res, params }) => {
        const topic = params.topic
        const problem = topicProblem(topic)
        if (problem !== undefined) throw new ApiError('bad_request', `topic ${JSON.stringify(topic)} ${problem}`)
        if ((await readRetained(deps, topic, 1)).length === 0) throw new ApiError('not_found', `no retained message on ${JSON.stringify(topic)}`)
        // An empty retained publish clears the topic, as a client would (current subscribers get the empty message).
        const packet = { cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false } as PublishPacket
        await new Promise<void>((resolve, reject) => aedes.publish(packet, err => err == null ? resolve() : reject(err)))
        log.info({ topic }, 'retained message deleted')
        sendJson(res, 200, { topic, deleted: true })
      }
    }
  ]
}
