import type { Aedes } from 'aedes'
import type { LevelStore } from '../store/index.js'
import type { Logger } from '../log/logger.js'
import type { BrokerInternals } from '../protocol/aedes-internals.js'

/**
 * Persistent-session bookkeeping aedes does not do: each clean=false connect and disconnect is recorded in the
 * store (so a session with no subscriptions still exists, and its idle time is known), and sessions idle longer
 * than `expiryMs` are removed with their queues.
 */
export async function trackSessions (aedes: Aedes, store: LevelStore, opts: { expiryMs: number }, log: Logger): Promise<{ close: () => void }> {
  // A crash leaves sessions marked connected; none is connected before the listeners open.
  const startedAt = Date.now()
  for (const id of await store.listSessions()) {
    const info = await store.sessionInfo(id)
    if (info?.connectedAt !== undefined && info.disconnectedAt === undefined) store.sessionConnected(id, false, startedAt)
  }

  aedes.on('client', client => {
    if (!client.clean) store.sessionConnected(client.id, true)
  })
  aedes.on('clientDisconnect', client => {
    if (!client.clean) store.sessionConnected(client.id, false)
  })

  if (opts.expiryMs === 0) return { close: () => {} }
  const sweep = async (): Promise<void> => {
    for (const clientId of store.idleSessions(opts.expiryMs)) {
      if ((aedes as BrokerInternals).clients[clientId] !== undefined) continue
      await store.purgeSession(clientId)
      log.info({ clientId, expiryMs: opts.expiryMs }, 'session expired')
    }
  }
  const timer = setInterval(() => {
    sweep().catch((err: unknown) => log.error({ err }, 'session expiry failed'))
  }, Math.min(60_000, Math.max(250, Math.floor(opts.expiryMs / 4))))
  timer.unref()
  return { close: () => clearInterval(timer) }
}
