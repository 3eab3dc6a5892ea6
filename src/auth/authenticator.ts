import type { PasswordTable } from './password-file.js'
import { verifyNothing, verifyPassword } from './password-hash.js'

/**
 * The login decision, without aedes: who a connecting client is, or the CONNACK code that refuses it.
 * 4 (bad user name or password) for credentials that do not check out, 5 (not authorized) for a client that is
 * not allowed in this way at all (anonymous where that is off, a certificate without a common name).
 */

export interface Identity {
  /** The user name the ACL knows the client by; undefined for an anonymous client. */
  readonly username: string | undefined
  /** method: an MQTT 5 enhanced authentication method (methods.ts). */
  readonly via: 'password' | 'certificate' | 'anonymous' | 'method'
  /** The password file hash the client logged in with; reloads end the connection when it changes. */
  readonly hash?: string
}

export interface LoginPolicy {
  readonly anonymousAllowed: boolean
  /** The certificate's common name is the user name; CONNECT credentials are ignored. */
  readonly useIdentityAsUsername: boolean
  /** Undefined when no password file is configured. */
  readonly passwords: PasswordTable | undefined
}

export interface LoginAttempt {
  readonly username: string | undefined
  readonly password: Buffer | undefined
  /** The verified client certificate's subject CN, when the connection has one. */
  readonly certificateCN: string | undefined
}

export type LoginFailure = 'no certificate identity' | 'anonymous not allowed' | 'no password file' | 'unknown user' | 'no password' | 'wrong password'

export type LoginResult =
  | { ok: true, identity: Identity }
  | { ok: false, code: 4 | 5, reason: LoginFailure }

export async function decideLogin (policy: LoginPolicy, attempt: LoginAttempt): Promise<LoginResult> {
  if (policy.useIdentityAsUsername) {
    const cn = attempt.certificateCN
    if (cn === undefined || cn === '') return { ok: false, code: 5, reason: 'no certificate identity' }
    return { ok: true, identity: { username: cn, via: 'certificate' } }
  }
  const { username, password } = attempt
  if (username === undefined) {
    return policy.anonymousAllowed
      ? { ok: true, identity: { username: undefined, via: 'anonymous' } }
      : { ok: false, code: 5, reason: 'anonymous not allowed' }
  }
  // Without a password file a user name cannot be checked; taking it on trust would hand its ACL rules to anyone.
  if (policy.passwords === undefined) return { ok: false, code: 4, reason: 'no password file' }
  const entry = policy.passwords.get(username)
  if (password === undefined) return { ok: false, code: 4, reason: 'no password' }
  if (entry === undefined) {
    await verifyNothing(password)
    return { ok: false, code: 4, reason: 'unknown user' }
  }
  if (!await verifyPassword(password, entry.parsed)) return { ok: false, code: 4, reason: 'wrong password' }
  return { ok: true, identity: { username, via: 'password', hash: entry.hash } }
}

/** Whether a client that logged in with a password still would after the password file changed. */
export function stillValid (identity: Identity, passwords: PasswordTable | undefined): boolean {
  if (identity.via !== 'password' || identity.username === undefined) return true
  return passwords?.get(identity.username)?.hash === identity.hash
}
