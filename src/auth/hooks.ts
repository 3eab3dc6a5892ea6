import type { Aedes, Client } from 'aedes'
import type { Config } from '../config/schema.js'
import { CulexError } from '../errors.js'
import type { AuthenticateStep, ForwardStep, PublishStep, SubscribeStep } from '../hook-chain.js'
import { connectionInfo } from '../listeners/connection-info.js'
import type { ListenerName } from '../listeners/listener.js'
import { clientLogger, remoteAddress } from '../log/client-log.js'
import type { Logger } from '../log/logger.js'
import { mayRead, maySubscribe, mayWrite, rulesFor, type Acl, type AclRule } from './acl.js'
import { parseAclFile } from './acl-parse.js'
import { anonymousAllowed, anonymousProblems } from './anonymous.js'
import { decideLogin, stillValid, type Identity, type LoginPolicy } from './authenticator.js'
import { LoginBackoff } from './login-backoff.js'
import { AuthMethods, methodLoginOf } from './methods.js'
import { parsePasswordFile, type PasswordTable } from './password-file.js'
import { ReloadableFile, type ReloadOutcome } from './reloadable-file.js'

/**
 * Authentication and authorization as steps in aedes' hooks (chained by src/broker.ts); the only auth code that
 * touches aedes objects. Decisions live in the pure modules next to this one; docs/security.md is the user's view.
 */

export interface AuthCounters {
  loginFailures: number
  willRefused: number
  publishDenied: number
  subscribeDenied: number
  forwardDenied: number
  disconnectedOnReload: number
}

export interface ReloadResult { passwordFile: ReloadOutcome | 'none', aclFile: ReloadOutcome | 'none' }

export interface AuthHooks {
  authenticate: AuthenticateStep
  authorizePublish: PublishStep
  authorizeSubscribe: SubscribeStep
  authorizeForward: ForwardStep
  /** Whether the ACL as loaded (in memory, as the last reload left it) lets `who` publish to `topic`; true without an ACL. */
  mayPublishAs: (who: { username?: string, clientId: string }, topic: string) => boolean
  /** Gives the hooks the broker whose clients a password reload may disconnect. */
  attach: (broker: Aedes) => void
  /** Reads the password and ACL files again (what SIGHUP does). */
  reload: () => Promise<ReloadResult>
  counters: AuthCounters
  /** The MQTT 5 enhanced authentication methods offered (methods.ts); none unless one is registered. */
  methods: AuthMethods
  close: () => void
}

const identities = new WeakMap<Client, Identity>()

/** Who a connected client logged in as (undefined before it is authenticated). */
export function identityOf (client: Client): Identity | undefined {
  return identities.get(client)
}

/** Settings that cannot start, as one ERR_CONFIG_INVALID error (exit code 2). Runs before anything is opened. */
export function assertAuthConfig (config: Config): void {
  const problems = anonymousProblems(config.listeners, config.auth.passwordFile)
  if (problems.length > 0) {
    throw new CulexError('ERR_CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'})`, { details: problems })
  }
}

export async function createAuthHooks (config: Config, log: Logger): Promise<AuthHooks> {
  const authLog = log.child({ component: 'auth' })
  const counters: AuthCounters = { loginFailures: 0, willRefused: 0, publishDenied: 0, subscribeDenied: 0, forwardDenied: 0, disconnectedOnReload: 0 }
  let broker: Aedes | undefined
  const watch = config.auth.watchFiles

  const passwords = config.auth.passwordFile === ''
    ? undefined
    : await ReloadableFile.open<PasswordTable>({
      file: config.auth.passwordFile,
      what: 'password file',
      parse: text => { const r = parsePasswordFile(text); return r.ok ? { ok: true, value: r.table } : r },
      watch,
      log: authLog,
      summary: table => ({ users: table.size }),
      onChange: table => disconnectRevoked(table)
    })
  let acl: ReloadableFile<Acl> | undefined
  try {
    acl = config.auth.aclFile === ''
      ? undefined
      : await ReloadableFile.open<Acl>({
        file: config.auth.aclFile,
        what: 'ACL file',
        parse: text => { const r = parseAclFile(text, config.auth.aclFile); return r.ok ? { ok: true, value: r.acl } : r },
        watch,
        log: authLog,
        summary: a => ({ users: a.users.size, anonymousRules: a.anonymous.length, patterns: a.patterns.length })
      })
  } catch (err) {
    passwords?.close()
    throw err
  }

  const policies = new Map<ListenerName, Omit<LoginPolicy, 'passwords'>>()
  for (const name of ['mqtt', 'mqtts', 'ws', 'wss'] as const) {
    const l = config.listeners[name]
    const useIdentityAsUsername = 'useIdentityAsUsername' in l && l.useIdentityAsUsername
    const anon = anonymousAllowed(l, passwords !== undefined)
    policies.set(name, { anonymousAllowed: anon, useIdentityAsUsername })
    if (l.enabled && anon && !useIdentityAsUsername) authLog.warn({ listener: name, host: l.host, allowAnonymous: l.allowAnonymous }, 'anonymous access is enabled on this listener')
  }
  const backoff = new LoginBackoff({ baseMs: config.auth.failedLoginDelayMs, maxMs: config.auth.failedLoginMaxDelayMs, maxUsersPerAddress: config.auth.failedLoginMaxUsersPerAddress })

  function disconnectRevoked (table: PasswordTable): void {
    const clients = (broker as unknown as { clients?: Record<string, Client> } | undefined)?.clients ?? {}
    for (const client of Object.values(clients)) {
      const id = identities.get(client)
      if (id === undefined || stillValid(id, table)) continue
      counters.disconnectedOnReload++
      clientLogger(log, client).warn({ username: id.username }, 'disconnecting a client whose password was changed or removed')
      client.close()
    }
  }

  // The rules of one client, recomputed only when the ACL file was reloaded.
  const ruleCache = new WeakMap<Client, { acl: Acl, rules: AclRule[] }>()
  const rulesOf = (client: Client, table: Acl): AclRule[] => {
    const cached = ruleCache.get(client)
    if (cached?.acl === table) return cached.rules
    const rules = rulesFor(table, { username: identities.get(client)?.username, clientId: client.id })
    ruleCache.set(client, { acl: table, rules })
    return rules
  }

  const authenticate: AuthenticateStep = async (client, username, password) => {
    const info = connectionInfo(client.conn)
    const listener = info?.listener ?? 'mqtt'
    const policy = { ...policies.get(listener) ?? { anonymousAllowed: false, useIdentityAsUsername: false }, passwords: passwords?.value }
    const address = info?.remoteAddress ?? remoteAddress(client)?.replace(/:\d+$/, '') ?? 'unknown'
    // a client an MQTT 5 enhanced authentication method let in (methods.ts) is who the method says
    const byMethod = methodLoginOf(client)
    const delayMs = byMethod === undefined ? backoff.delayMs(address, username) : 0
    const [result] = await Promise.all([
      byMethod === undefined
        ? decideLogin(policy, { username, password, certificateCN: policy.useIdentityAsUsername ? certificateCN(info?.tlsSocket) : undefined })
        : { ok: true as const, identity: { username: byMethod.username, via: 'method' as const } },
      new Promise(resolve => setTimeout(resolve, delayMs))
    ])
    if (!result.ok) {
      counters.loginFailures++
      const failures = backoff.failed(address, username)
      clientLogger(log, client).warn({ listener, username, reason: result.reason, returnCode: result.code, failures, delayedMs: delayMs }, 'login failed')
      // An attempt the backoff held is answered as one made too soon (MQTT 5: Connection rate exceeded); the detail
      // tells no more than the delay did (never whether the user name exists).
      if (delayMs > 0) return { code: result.code, refuse: 'rate', detail: `login failed after ${failures - 1} failed logins from this address; this attempt was held ${delayMs} ms` }
      return result.code
    }
    if (result.identity.via !== 'anonymous') backoff.succeeded(address, username)
    identities.set(client, result.identity)
    // Mosquitto checks the will topic at CONNECT too: a will the client may not publish would only be dropped later.
    // aedes holds the CONNECT's will in _will until the connection is accepted.
    const will = (client as unknown as { _will?: { topic: string } | null })._will
    if (acl !== undefined && will != null && !mayWrite(rulesOf(client, acl.value), will.topic)) {
      counters.willRefused++
      identities.delete(client)
      clientLogger(log, client).warn({ listener, username: result.identity.username, topic: will.topic, returnCode: 5 }, 'connection refused: the ACL denies the will topic')
      return 5
    }
    return undefined
  }

  const authorizePublish: PublishStep = (client, packet) => {
    // A null client is a will of a broker that died; its topic was checked when that client connected.
    if (acl === undefined || client === null) return undefined
    if (mayWrite(rulesOf(client, acl.value), packet.topic)) return undefined
    counters.publishDenied++
    return { drop: 'unauthorized', detail: 'the ACL does not allow this client to publish to this topic' }
  }

  const authorizeSubscribe: SubscribeStep = (client, sub) => {
    if (acl === undefined || maySubscribe(rulesOf(client, acl.value), aclFilter(sub.topic))) return true
    counters.subscribeDenied++
    clientLogger(log, client).warn({ topic: sub.topic, reason: 'unauthorized' }, 'subscription refused')
    return { refuse: 'unauthorized', detail: 'the ACL does not allow this client to subscribe to this filter' }
  }

  // Checked for every message at delivery, so an ACL change also stops subscriptions granted before it, retained
  // messages and offline queues.
  const authorizeForward: ForwardStep = (client, packet) => {
    if (acl === undefined || mayRead(rulesOf(client, acl.value), packet.topic)) return true
    counters.forwardDenied++
    // a child logger is made per line: not for a line that is not written
    if (log.isLevelEnabled('debug')) clientLogger(log, client).debug({ topic: packet.topic, reason: 'unauthorized' }, 'delivery withheld')
    return false
  }

  const mayPublishAs = (who: { username?: string, clientId: string }, topic: string): boolean =>
    acl === undefined || mayWrite(rulesFor(acl.value, { username: who.username, clientId: who.clientId }), topic)

  const reload = async (): Promise<ReloadResult> => ({
    passwordFile: passwords === undefined ? 'none' : await passwords.reload('signal'),
    aclFile: acl === undefined ? 'none' : await acl.reload('signal')
  })
  // SIGHUP reloads, as in Mosquitto; without a listener Node would end the process on it.
  const onSighup = (): void => {
    authLog.info({ signal: 'SIGHUP' }, 'reloading the password and ACL files')
    void reload()
  }
  process.on('SIGHUP', onSighup)

  return {
    authenticate,
    authorizePublish,
    authorizeSubscribe,
    authorizeForward,
    mayPublishAs,
    attach: b => { broker = b },
    reload,
    counters,
    methods: new AuthMethods(),
    close: () => {
      process.off('SIGHUP', onSighup)
      passwords?.close()
      acl?.close()
    }
  }
}

function certificateCN (socket: import('node:tls').TLSSocket | undefined): string | undefined {
  if (socket === undefined || !socket.authorized) return undefined
  const cn = socket.getPeerCertificate()?.subject?.CN as string | string[] | undefined
  return typeof cn === 'string' ? cn : undefined
}

/** A shared subscription ($share/<group>/<filter>) is authorized on its filter, as in Mosquitto. */
export function aclFilter (topic: string): string {
  if (!topic.startsWith('$share/')) return topic
  const slash = topic.indexOf('/', '$share/'.length)
  return slash === -1 ? topic : topic.slice(slash + 1)
}
