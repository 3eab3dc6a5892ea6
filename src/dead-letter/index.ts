/**
 * The dead-letter topic (docs/dead-letter.md): every message Culex refuses or cannot deliver is kept in the store
 * and published as an envelope on `$DLQ/<reason>/<topic>`; listed, replayed and purged through the admin API and
 * `culex dlq`.
 *
 *   createDeadLetters(deps)   the hooks src/broker.ts wires, the admin routes and the metrics
 */
import type { BrokerMetrics } from '../metrics/index.js'
import { createDeadLetterHooks, type DeadLetterHooksDeps } from './hooks.js'
import { deadLetterRoutes } from './routes.js'

export { REASONS, type DeadLetterReason } from './service.js'
export type { Envelope } from './envelope.js'
export type { SharedDeadLetter } from './hooks.js'

export function createDeadLetters (deps: DeadLetterHooksDeps) {
  const hooks = createDeadLetterHooks(deps)
  const evicted = (): number => deps.store.deadLetters.evicted
  const registerMetrics = (metrics: BrokerMetrics): void => {
    metrics.countersFrom('culex_dead_letters_total', 'Messages refused or given up (dead letters), by reason.', 'reason', () => hooks.service.counts)
    metrics.countersFrom('culex_dead_letters_suppressed_total', 'Dead letters over deadLetter.ratePerSecond: stored, their envelope not published, by reason.', 'reason', () => hooks.service.suppressed)
    metrics.countersFrom('culex_dead_letters_evicted_total', 'Stored dead letters removed by deadLetter.maxMessages, maxBytes or maxAgeMs, oldest first.', 'bound', () => ({ limits: evicted() }))
    metrics.gauge({
      name: 'culex_dead_letters_stored',
      help: 'Dead letters kept in the store.',
      collect () { this.set(deps.store.deadLetters.count) }
    })
    metrics.gauge({
      name: 'culex_dead_letters_stored_bytes',
      help: 'Payload bytes of the dead letters kept in the store (bounded by deadLetter.maxBytes).',
      collect () { this.set(deps.store.deadLetters.bytes) }
    })
  }
  return {
    ...hooks,
    routes: deadLetterRoutes(hooks.service, evicted),
    registerMetrics
  }
}
