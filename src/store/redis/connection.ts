import { isIP } from 'node:net'
import { Redis, type RedisOptions } from 'ioredis'
import { CulexError } from '../../errors.js'
import { createLogger, type Logger } from '../../log/logger.js'

export interface RedisConnectionOptions {
  /** redis:// or rediss:// (TLS); with sentinels, only its password, user and database number are used. */
  url: string
  /** host:port of Redis Sentinels; with them, the master of `sentinelName` is used. */
  sentinels?: string[]
  sentinelName?: string
  /** With rediss://: the CA certificates (PEM) the server's certificate must chain to, instead of Node's own list. */
  tlsCa?: Buffer
}

/** The address as log lines and errors show it: the password is left out. */
export function redisLocation (opts: RedisConnectionOptions): string {
  if (opts.sentinels !== undefined && opts.sentinels.length > 0) return `sentinel ${opts.sentinelName ?? 'mymaster'} via ${opts.sentinels.join(',')}`
  try {
    const url = new URL(opts.url)
    url.password = ''
    return url.toString()
  } catch {
    return '(invalid URL)'
  }
}

/** Checks the form of the settings; throws ERR_CONFIG with what is wrong. */
export function redisOptions (opts: RedisConnectionOptions): RedisOptions {
  let url: URL
  try {
    url = new URL(opts.url)
  } catch {
    throw new CulexError('ERR_CONFIG_INVALID', `cluster.redisUrl is not a URL: give redis://host:port or rediss://host:port (TLS)`)
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new CulexError('ERR_CONFIG_INVALID', `cluster.redisUrl must start with redis:// or rediss://, not ${url.protocol}//`)
  }
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0
  if (!Number.isInteger(db) || db < 0) throw new CulexError('ERR_CONFIG_INVALID', `cluster.redisUrl names database ${url.pathname.slice(1)}: give a number`)
  const auth: RedisOptions = {
    ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
    ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
    db,
    ...(url.protocol === 'rediss:' ? { tls: tlsOptions(url.hostname, opts.tlsCa) } : {})
  }
  // Commands wait while Redis is away (never an error that would fail a publish after a blip): the publisher is
  // simply not acknowledged until Redis answers again.
  const waiting: RedisOptions = { maxRetriesPerRequest: null, enableOfflineQueue: true, enableAutoPipelining: true }
  if (opts.sentinels !== undefined && opts.sentinels.length > 0) {
    const sentinels = opts.sentinels.map((entry) => {
      const [host, port] = entry.split(':')
      if (host === '' || !/^\d+$/.test(port ?? '')) throw new CulexError('ERR_CONFIG_INVALID', `cluster.redisSentinels: "${entry}" is not host:port`)
      return { host, port: Number(port) }
    })
    return { ...auth, ...waiting, sentinels, name: opts.sentinelName ?? 'mymaster', ...(url.protocol === 'rediss:' ? { enableTLSForSentinelMode: true } : {}) }
  }
  return { ...auth, ...waiting, host: url.hostname, port: url.port === '' ? 6379 : Number(url.port) }
}

/**
 * The certificate is checked against the URL's host name (with Sentinels too: the master's address they give is
 * an IP the certificate seldom names). An IP address is not sent as SNI (RFC 6066): Node then checks it
 * against the certificate's IP addresses.
 */
function tlsOptions (hostname: string, ca: Buffer | undefined): NonNullable<RedisOptions['tls']> {
  return {
    ...(isIP(hostname) === 0 ? { servername: hostname } : {}),
    ...(ca === undefined ? {} : { ca })
  }
}

/** How long a start waits for Redis before it says so in the log (then it keeps waiting). */
const WAITING_LOG_MS = 2000

/**
 * Opens the connection and waits until Redis answers a PING: however long with `timeoutMs` undefined (a broker
 * starting: nodes and Redis may start in any order, `waiting for Redis` is logged once after 2 s), else within
 * `timeoutMs` (a command: ERR_CLUSTER_REDIS). Once open, losing Redis is logged once (`redis unavailable`), and
 * its return once (`redis available again`).
 */
export async function connectRedis (opts: RedisConnectionOptions, log: Logger, timeoutMs?: number): Promise<Redis> {
  const where = redisLocation(opts)
  const redis = new Redis({ ...redisOptions(opts), lazyConnect: true })
  let lastError: Error | undefined
  redis.on('error', (err: Error) => { lastError = err })
  const answered = timeoutMs === undefined
    ? untilReady(redis, () => log.warn({ redis: where, err: lastError?.message }, 'waiting for Redis'))
    : withTimeout(redis.connect().then(async () => await redis.ping()), timeoutMs, () => lastError)
  try {
    await answered
  } catch (err) {
    redis.disconnect()
    // ioredis reports "Connection is closed"; the socket's own error (ECONNREFUSED, ENOTFOUND, auth) says more
    const reason = lastError?.message ?? (err as Error).message
    throw new CulexError('ERR_CLUSTER_REDIS', `Redis at ${where} does not answer: ${reason}`, { cause: err })
  }
  let down = false
  const lost = (err?: Error): void => {
    if (down || redis.status === 'end') return
    down = true
    log.error({ redis: where, err: err ?? lastError }, 'redis unavailable: QoS 1/2 publishes wait for it, unacknowledged')
  }
  redis.on('error', (err: Error) => { lost(err) })
  redis.on('close', () => { lost() })
  redis.on('ready', () => {
    if (!down) return
    down = false
    log.warn({ redis: where }, 'redis available again')
  })
  return redis
}

/**
 * Connects, ioredis retrying for as long as it takes, until the connection is ready; `waiting` runs once if that
 * takes more than 2 s. A connection opened already (a command sent on a lazy one) is waited for the same way.
 */
export async function untilReady (redis: Redis, waiting: () => void): Promise<void> {
  if (redis.status === 'ready') return
  const ready = new Promise<void>(resolve => redis.once('ready', () => resolve()))
  if (redis.status === 'wait') redis.connect().catch(() => {})
  const timer = setTimeout(waiting, WAITING_LOG_MS)
  try {
    await ready
  } finally {
    clearTimeout(timer)
  }
}

async function withTimeout<T> (work: Promise<T>, ms: number, reason: () => Error | undefined): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`no answer within ${ms} ms${reason() === undefined ? '' : ` (${String(reason()?.message)})`}`)) }, ms)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** For `culex check-config`: connects, PINGs and disconnects; throws ERR_CLUSTER_REDIS or ERR_CONFIG_INVALID. */
export async function checkRedis (opts: RedisConnectionOptions, timeoutMs = 5000): Promise<void> {
  const redis = await connectRedis(opts, createLogger({ level: 'silent', format: 'json' }), timeoutMs)
  await redis.quit().catch(() => { redis.disconnect() })
}
