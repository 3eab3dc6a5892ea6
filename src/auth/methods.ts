import type { Client } from 'aedes'

/**
 * MQTT 5 enhanced authentication (docs/security.md, "Enhanced authentication"): the contract a method such as
 * SCRAM-SHA-256 implements to plug into Culex, and the registry it is plugged into. The protocol layer
 * (src/protocol/v5/enhanced-auth.ts) carries the exchange — CONNECT, AUTH 0x18 both ways, CONNACK; AUTH 0x19 for a
 * re-authentication — and a method only sees the Authentication Data and answers with the next step. No method is
 * registered by default: a CONNECT that names one is refused with CONNACK 0x8C (Bad authentication method).
 */

/** Who is authenticating, for the method to decide with. */
export interface AuthContext {
  readonly clientId: string
  /** The User Name of the CONNECT, if it had one (a method may ignore it). */
  readonly username: string | undefined
  /** false for the exchange of a CONNECT, true for a re-authentication (AUTH 0x19) on a connected client. */
  readonly reauthentication: boolean
}

/** What a method answers to each Authentication Data it is given. */
export type AuthStepResult =
  /** Send the client AUTH 0x18 (Continue authentication) with this data; its answer comes to the next step. */
  | { outcome: 'continue', data: Buffer }
  /**
   * Authenticated: CONNACK 0x00 (AUTH 0x00 for a re-authentication) with this data, if any; the client is known by
   * `username` to the ACL (undefined: the anonymous rules). A re-authentication must end as the same user.
   */
  | { outcome: 'success', data?: Buffer, username?: string }
  /** Refused: CONNACK 0x87 (DISCONNECT 0x87 for a re-authentication), the reason as its Reason String. */
  | { outcome: 'failure', reason: string }

/** One exchange: `step` is called with the CONNECT's (or AUTH 0x19's) data first, then with each AUTH 0x18's. */
export interface AuthExchange {
  step: (data: Buffer | undefined) => Promise<AuthStepResult>
}

export interface AuthMethod {
  /** The Authentication Method a client names, e.g. "SCRAM-SHA-256" (compared exactly). */
  readonly name: string
  start: (context: AuthContext) => AuthExchange
}

/** The methods this broker offers (Culex.security.authMethods); register them before clients connect. */
export class AuthMethods {
  readonly #methods = new Map<string, AuthMethod>()

  register (method: AuthMethod): void {
    if (this.#methods.has(method.name)) throw new Error(`authentication method ${method.name} is already registered`)
    this.#methods.set(method.name, method)
  }

  get (name: string): AuthMethod | undefined {
    return this.#methods.get(name)
  }

  get names (): string[] {
    return [...this.#methods.keys()]
  }
}

/** A client an authentication method let in, and as whom: the login step takes it from here (auth/hooks.ts). */
const methodLogins = new WeakMap<Client, { method: string, username: string | undefined }>()

export function noteMethodLogin (client: Client, login: { method: string, username: string | undefined }): void {
  methodLogins.set(client, login)
}

export function methodLoginOf (client: Client): { method: string, username: string | undefined } | undefined {
  return methodLogins.get(client)
}
