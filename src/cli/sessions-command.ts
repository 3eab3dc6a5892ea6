import { parseArgs } from 'node:util'
import { CulexError, exitCodes } from '../errors.js'
import { openRedisStore } from '../store/index.js'
import { NO_LIMITS, openDataDir, quietLogger, storeDir } from './data-dir.js'
import { connectTarget, nodeOfLiveRun, redisTarget } from './redis-target.js'
import { recordConnected } from '../store/session-records.js'

export const sessionsHelp = `culex sessions list|show <clientId>|purge <clientId> [--data-dir dir | --redis-url url] [--json]    persistent sessions in a data directory or a cluster's Redis

  Opens the data directory directly, so the broker must be stopped; while it runs, the admin API
  (GET /api/sessions, DELETE /api/sessions/<id>) and the console do the same. In cluster mode
  (--redis-url, default $CULEX_CLUSTER_REDIS_URL; key prefix $CULEX_CLUSTER_REDIS_KEY_PREFIX or culex:)
  it reads the cluster's Redis, with the nodes running; purge refuses a session whose client is connected to a
  running node (ERR_SESSION_CONNECTED): a node's admin API purges it, disconnecting the client first.`

export const storageOptions = {
  'data-dir': { type: 'string', default: './data' },
  'redis-url': { type: 'string', default: process.env.CULEX_CLUSTER_REDIS_URL ?? '' },
  json: { type: 'boolean', default: false }
} as const

export async function sessionsCommand (args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: storageOptions, allowPositionals: true, strict: true })
  const [action, clientId] = positionals
  const withId = action === 'show' || action === 'purge'
  if (!(action === 'list' && positionals.length === 1) && !(withId && positionals.length === 2)) {
    throw new CulexError('ERR_USAGE', 'usage: culex sessions list|show <clientId>|purge <clientId> [--data-dir dir]')
  }
  const redisUrl = values['redis-url']
  const where = redisUrl === '' ? storeDir(values['data-dir']) : 'Redis'
  const store = redisUrl === ''
    ? await openDataDir(values['data-dir'])
    : await openRedisStore({ redis: redisTarget(redisUrl), logger: quietLogger(), limits: NO_LIMITS })
  try {
    if (action === 'list') {
      const infos = await Promise.all((await store.listSessions()).map(async id => await store.sessionInfo(id)))
      if (values.json) process.stdout.write(JSON.stringify(infos) + '\n')
      else {
        process.stdout.write('client id\tsubscriptions\tqueued\tin flight\tqueued bytes\toldest queued\n')
        for (const i of infos) {
          if (i === undefined) continue
          const oldest = i.oldestQueuedAt === undefined ? '-' : new Date(i.oldestQueuedAt).toISOString()
          process.stdout.write(`${i.clientId}\t${i.subscriptions.length}\t${i.queued}\t${i.inflight}\t${i.queuedBytes}\t${oldest}\n`)
        }
      }
      return exitCodes.ok
    }
    const info = await store.sessionInfo(clientId)
    if (info === undefined) {
      process.stderr.write(`culex: no persistent session ${JSON.stringify(clientId)} in ${where}\n`)
      return exitCodes.failure
    }
    if (action === 'show') {
      process.stdout.write(JSON.stringify(info, null, 2) + '\n')
      return exitCodes.ok
    }
    const heldBy = (info as { heldBy?: unknown }).heldBy
    if (redisUrl !== '' && recordConnected(info) && typeof heldBy === 'string') await refuseIfConnected(redisUrl, clientId, heldBy)
    await store.purgeSession(clientId)
    process.stdout.write(`purged session ${clientId} (${info.queued} queued message(s), ${info.subscriptions.length} subscription(s))\n`)
    return exitCodes.ok
  } finally {
    await store.close()
  }
}

/**
 * A session whose record names a live run of a node has its client connected there: purged under it, that node would
 * go on serving a session half gone. The admin API kicks the client first, wherever it is.
 */
async function refuseIfConnected (url: string, clientId: string, heldBy: string): Promise<void> {
  const { redis, prefix } = await connectTarget(redisTarget(url))
  try {
    const node = await nodeOfLiveRun(redis, prefix, heldBy)
    if (node === undefined) return
    throw new CulexError('ERR_SESSION_CONNECTED', `the client of session ${JSON.stringify(clientId)} is connected to node ${node}: purge it through a node's admin API (DELETE /api/sessions/<id>), which disconnects it first, or once it has gone`)
  } finally {
    redis.disconnect()
  }
}
