import { filterProblem } from '../protocol/topic.js'
import { ApiError, paginate, sendJson } from '../admin/http.js'
import type { AdminRoute } from '../admin/router.js'
import type { StoredDeadLetter } from '../store/dead-letters.js'
import { parseSince, type Filters } from './filters.js'
import { REASONS, type DeadLetters } from './service.js'


/** ?reason= ?topic= (a topic filter) ?clientId= ?since= (ISO time, epoch ms or an age such as 2h). */
export function filtersOf (query: URLSearchParams): Filters {
  const f: Filters = {}
  const reason = query.get('reason')
  if (reason !== null && reason !== '') {
    if (!(REASONS as readonly string[]).includes(reason)) throw new ApiError('bad_request', `reason must be one of ${REASONS.join(', ')}, got ${JSON.stringify(reason)}`)
    f.reason = reason
  }
  const topic = query.get('topic')
  if (topic !== null && topic !== '') {
    const problem = filterProblem(topic)
    if (problem !== undefined) throw new ApiError('bad_request', `topic filter ${problem}`)
    f.topic = topic
  }
  const clientId = query.get('clientId')
  if (clientId !== null && clientId !== '') f.clientId = clientId
  const since = query.get('since')
  if (since !== null && since !== '') {
    const t = parseSince(since)
    if (t === undefined) throw new ApiError('bad_request', `since must be an ISO 8601 time, epoch milliseconds or an age like 15m, 2h, 7d; got ${JSON.stringify(since)}`)
    f.since = t
  }
  return f
}

function requireScope (query: URLSearchParams, f: Filters): void {
  if (Object.keys(f).length === 0 && query.get('all') !== 'true') {
    throw new ApiError('bad_request', 'give a filter (reason, topic, clientId, since) or all=true')
  }
}

export function row (e: StoredDeadLetter): Record<string, unknown> {
  return {
    id: e.id,
    reason: e.reason,
    topic: e.topic,
    qos: e.qos,
    clientId: e.clientId ?? null,
    target: e.target ?? null,
    attempts: e.attempts,
    bytes: e.bytes,
    rejectedAt: new Date(e.rejectedAt).toISOString(),
    detail: e.detail
  }
}

/** The admin API of the dead-letter log (feature 'dead-letters': the console shows a panel with Replay/Delete). */
export function deadLetterRoutes (service: DeadLetters, evicted: () => number): AdminRoute[] {
  const feature = 'dead-letters'
  return [
    {
      method: 'GET',
      path: '/api/dead-letters',
      feature,
      handler: async ({ res, query }) => {
        // Newest first: what an operator looks at.
        const all = (await service.list(filtersOf(query))).reverse().map(row)
        sendJson(res, 200, {
          ...paginate(all, query),
          counts: { ...service.counts },
          suppressed: { ...service.suppressed },
          evicted: evicted(),
          actions: [
            { label: 'Replay', method: 'POST', path: '/api/dead-letters/{id}/replay', confirm: true },
            { label: 'Delete', method: 'DELETE', path: '/api/dead-letters/{id}', confirm: true }
          ]
        })
      }
    },
    {
      method: 'GET',
      path: '/api/dead-letters/:id',
      handler: async ({ res, params }) => {
        const envelope = await service.show(params.id)
        if (envelope === undefined) throw new ApiError('not_found', `no dead letter ${JSON.stringify(params.id)}`)
        sendJson(res, 200, envelope)
      }
    },
    {
      method: 'POST',
      path: '/api/dead-letters/:id/replay',
      handler: async ({ res, params }) => {
        const result = await service.replay(params.id)
        if (result === undefined) throw new ApiError('not_found', `no dead letter ${JSON.stringify(params.id)}`)
        sendJson(res, 200, result)
      }
    },
    {
      method: 'POST',
      path: '/api/dead-letters/replay',
      handler: async ({ res, query }) => {
        const f = filtersOf(query)
        requireScope(query, f)
        const results = await service.replayAll(f)
        sendJson(res, 200, {
          replayed: results.length,
          published: results.filter(r => r.outcome === 'published').length,
          deadLettered: results.filter(r => r.outcome === 'dead-lettered').length,
          results
        })
      }
    },
    {
      method: 'DELETE',
      path: '/api/dead-letters/:id',
      handler: async ({ res, params }) => {
        const removed = await service.purge([params.id])
        if (removed.length === 0) throw new ApiError('not_found', `no dead letter ${JSON.stringify(params.id)}`)
        sendJson(res, 200, { removed: removed.length })
      }
    },
    {
      method: 'DELETE',
      path: '/api/dead-letters',
      handler: async ({ res, query }) => {
        const f = filtersOf(query)
        requireScope(query, f)
        const removed = await service.purge((await service.list(f)).map(e => e.id))
        sendJson(res, 200, { removed: removed.length })
      }
    }
  ]
}
