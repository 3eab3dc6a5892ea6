import net from 'node:net'

/**
 * Who may connect without credentials, per listener (Mosquitto 2's model). `auto`, the default, allows anonymous
 * clients only on a listener bound to a loopback address and only while no password file is configured, so the
 * out-of-the-box broker works for local tools and a reachable one never is open by accident.
 */

export type AnonymousSetting = 'auto' | boolean

export interface ListenerAuthSettings {
  readonly enabled: boolean
  readonly host: string
  readonly allowAnonymous: AnonymousSetting
  /** TLS listeners only: the certificate's CN is the user name. */
  readonly useIdentityAsUsername?: boolean
  readonly requireClientCert?: boolean
}

export function isLoopbackHost (host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '')
  if (h === 'localhost' || h === '::1') return true
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h
  return net.isIPv4(v4) && v4.startsWith('127.')
}

/** Whether clients without a user name are let in on this listener. */
export function anonymousAllowed (listener: ListenerAuthSettings, hasPasswordFile: boolean): boolean {
  if (listener.allowAnonymous !== 'auto') return listener.allowAnonymous
  return isLoopbackHost(listener.host) && !hasPasswordFile
}

/**
 * Settings that cannot start: a reachable listener left at `auto` with no way to authenticate anybody, and a
 * certificate identity without a required certificate. One line per problem, naming the keys to change.
 */
export function anonymousProblems (listeners: Readonly<Record<string, ListenerAuthSettings>>, passwordFile: string): string[] {
  const problems: string[] = []
  for (const [name, l] of Object.entries(listeners)) {
    if (!l.enabled) continue
    const key = `listeners.${name}`
    if (l.useIdentityAsUsername === true && l.requireClientCert !== true) {
      problems.push(`${key}.useIdentityAsUsername: needs ${key}.requireClientCert: true (a client without a certificate would have no identity)`)
    }
    if (l.allowAnonymous === 'auto' && !isLoopbackHost(l.host) && passwordFile === '' && l.useIdentityAsUsername !== true) {
      problems.push(`${key}.allowAnonymous: is auto and ${key}.host ${l.host} is not a loopback address, but no auth.passwordFile is set, so nobody could log in; set auth.passwordFile (see culex passwd), or ${key}.allowAnonymous: true to let anyone connect`)
    }
  }
  return problems
}
