import type { AuthenticateError, Client, ConnectPacket, PublishPacket, Subscription } from 'aedes'

/**
 * The shapes of the steps that features contribute to aedes' hooks. src/broker.ts chains them in a named order;
 * a step never calls aedes itself.
 */

/** Why a publish was refused. The closed list the dead-letter topic will report as `reason`. */
export type DropReason = 'reserved-topic' | 'unauthorized' | 'invalid-payload' | 'too-large'

export interface PublishDrop { drop: DropReason, detail: string }

/** Returns a drop to refuse the publish (the publisher is still acknowledged), nothing to let it through. */
export type PublishStep = (client: Client | null, packet: PublishPacket) => PublishDrop | undefined | Promise<PublishDrop | undefined>

/**
 * Why a subscription was refused, for the SUBACK reason code an MQTT 5 client gets (protocol/v5/suback.ts): the ACL
 * (0x87), a filter this broker does not take (0x8F), a limit on subscriptions (0x97).
 */
export type SubscribeRefusalReason = 'unauthorized' | 'filter-invalid' | 'quota'

export interface SubscribeRefusal { refuse: SubscribeRefusalReason, detail: string }

/**
 * Returns true to let one subscription through, a refusal (or false: no reason to tell) to refuse it: SUBACK 0x80
 * for it alone, or for an MQTT 5 client the refusal's reason code.
 */
export type SubscribeStep = (client: Client, sub: Subscription) => boolean | SubscribeRefusal | Promise<boolean | SubscribeRefusal>

/** CONNACK return codes of MQTT 3.1.1 a step may refuse with. */
export type ConnectRefusal = 2 | 3 | 4 | 5

/** Returns a CONNACK code to refuse the connection, nothing to accept it. */
export type ConnectStep = (client: Client, packet: ConnectPacket) => ConnectRefusal | undefined | Promise<ConnectRefusal | undefined>

/**
 * A refusal that says more than its MQTT 3.1.1 code, for the CONNACK reason code an MQTT 5 client gets
 * (protocol/v5/connack.ts): failed logins too fast (0x9F, Connection rate exceeded), an enhanced authentication
 * method's refusal (0x87, with its reason). An MQTT 3.1.1 client gets `code`.
 */
export interface LoginRefusal { code: ConnectRefusal, refuse: 'rate' | 'not-authorized', detail: string }

export type AuthenticateStep = (client: Client, username: string | undefined, password: Buffer | undefined) => ConnectRefusal | LoginRefusal | undefined | Promise<ConnectRefusal | LoginRefusal | undefined>

/**
 * Returns false to withhold one message from one subscriber (live, retained or from its offline queue). Synchronous:
 * aedes calls authorizeForward synchronously for every delivery and uses its result at once.
 */
export type ForwardStep = (client: Client, packet: PublishPacket) => boolean

type Callback<T> = (error: Error | null, value?: T) => void

function refusal (code: ConnectRefusal, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError
}

/**
 * The first verdict of the steps, in order. Synchronous while the steps are: awaiting each of the seven publish
 * checks cost seven microtask hops on every PUBLISH, and nearly every check answers at once. The arguments are
 * passed one by one, not spread from an array, for the same reason.
 */
function firstVerdict<A, B, C, V> (steps: ReadonlyArray<(a: A, b: B, c: C) => V | undefined | Promise<V | undefined>>, a: A, b: B, c: C, from = 0): V | undefined | Promise<V | undefined> {
  for (let i = from; i < steps.length; i++) {
    const verdict = steps[i](a, b, c)
    if (verdict instanceof Promise) {
      return verdict.then(v => v !== undefined ? v : firstVerdict(steps, a, b, c, i + 1))
    }
    if (verdict !== undefined) return verdict
  }
  return undefined
}

/** firstVerdict as a promise, for the hooks that answer through a callback anyway. */
async function verdictOf<A, B, C, V> (steps: ReadonlyArray<(a: A, b: B, c: C) => V | undefined | Promise<V | undefined>>, a: A, b: B, c: C): Promise<V | undefined> {
  return await firstVerdict(steps, a, b, c)
}

export function chainPreConnect (steps: readonly ConnectStep[]) {
  return (client: Client, packet: ConnectPacket, cb: (error: Error | null, ok: boolean) => void): void => {
    verdictOf(steps, client, packet, undefined).then(
      code => code === undefined ? cb(null, true) : cb(refusal(code, 'connection refused'), false),
      err => cb(err as Error, false))
  }
}

export function chainAuthenticate (steps: readonly AuthenticateStep[], onRefused: (client: Client, refusal: LoginRefusal) => void = () => {}) {
  return (client: Client, username: string | undefined, password: Buffer | undefined, cb: (error: AuthenticateError | null, ok: boolean | null) => void): void => {
    verdictOf(steps, client, username, password).then(
      verdict => {
        if (verdict === undefined) return cb(null, true)
        if (typeof verdict === 'number') return cb(refusal(verdict, 'authentication failed'), false)
        onRefused(client, verdict)
        // the detail reaches the log line aedes' error event gives
        cb(refusal(verdict.code, `authentication failed: ${verdict.detail}`), false)
      },
      err => cb(Object.assign(err as Error, { returnCode: 3 }) as AuthenticateError, false))
  }
}

export interface PublishChain {
  checks: readonly PublishStep[]
  /** Told about every refused publish, after it is marked as settled. */
  onDrop: (client: Client | null, packet: PublishPacket, drop: PublishDrop) => void
  /**
   * Runs for an accepted publish before aedes acknowledges it; an error closes the connection unacknowledged.
   * A callback, not a promise: it runs for every PUBLISH.
   */
  commit: (client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) => void
  /** Marks a packet so aedes' own publish of it becomes a no-op. */
  settle: (packet: PublishPacket) => void
  /** Close a connected publisher's connection, unacknowledged, instead of acknowledging a refused publish. */
  disconnectOnDrop: boolean
  /**
   * Told about an error thrown after the publish was answered (by what aedes runs from its callback, or a step
   * that answered and then threw). aedes has moved on by then; rethrowing it from a promise callback would be an
   * unhandled rejection that ends the process, so the one client it happened for is closed instead.
   */
  onError: (client: Client | null, error: unknown) => void
}

/** aedes' callback for one publish, answered once; `answered` tells a throw after the answer from one before it. */
interface PublishAnswer {
  (err?: Error | null): void
  answered: boolean
}

function answerOnce (cb: (error?: Error | null) => void): PublishAnswer {
  const answer = ((err?: Error | null): void => {
    answer.answered = true
    cb(err)
  }) as PublishAnswer
  answer.answered = false
  return answer
}

/**
 * A step or the commit that throws before answering becomes an error for aedes (the connection closes
 * unacknowledged); a throw after the answer (from aedes' own continuation) goes to onError.
 */
function failPublish (chain: PublishChain, client: Client | null, answer: PublishAnswer, err: unknown): void {
  if (answer.answered) {
    chain.onError(client, err)
    return
  }
  answer(err as Error)
}

function decidePublish (chain: PublishChain, client: Client | null, packet: PublishPacket, verdict: PublishDrop | undefined, answer: PublishAnswer): void {
  try {
    if (verdict === undefined) {
      chain.commit(client, packet, answer)
      return
    }
    chain.onDrop(client, packet, verdict)
    // MQTT 3.1.1 has no negative acknowledgement: by default the publisher gets its PUBACK/PUBREC and stays
    // connected; the other choice 3.1.1 allows [MQTT-3.3.5-2] is closing the connection. A will has no
    // connection to close (an orphaned one would make aedes report an error forever), so it is always settled.
    if (chain.disconnectOnDrop && client !== null && (client as { will?: unknown }).will !== packet) {
      answer(new Error(`publish refused (${verdict.drop}): ${verdict.detail}`))
      return
    }
    chain.settle(packet)
    answer(null)
  } catch (err) {
    failPublish(chain, client, answer, err)
  }
}

/**
 * The publish checks, then the commit. One callback per PUBLISH and the functions above, not three closures made
 * for each: this runs for every message.
 */
export function chainAuthorizePublish (chain: PublishChain) {
  return (client: Client | null, packet: PublishPacket, cb: (error?: Error | null) => void): void => {
    const answer = answerOnce(cb)
    let verdict: PublishDrop | undefined | Promise<PublishDrop | undefined>
    try {
      verdict = firstVerdict(chain.checks, client, packet, undefined)
    } catch (err) {
      failPublish(chain, client, answer, err)
      return
    }
    if (!(verdict instanceof Promise)) {
      decidePublish(chain, client, packet, verdict, answer)
      return
    }
    verdict.then(v => { decidePublish(chain, client, packet, v, answer) }, (err: unknown) => { failPublish(chain, client, answer, err) })
  }
}

export function chainAuthorizeSubscribe (steps: readonly SubscribeStep[], onGranted: (sub: Subscription) => void, onRefused: (client: Client, sub: Subscription, refusal: SubscribeRefusal) => void = () => {}) {
  return (client: Client, sub: Subscription, cb: Callback<Subscription | null>): void => {
    (async () => {
      for (const step of steps) {
        const verdict = await step(client, sub)
        if (verdict !== true) return verdict
      }
      return true
    })().then(verdict => {
      if (verdict !== true) {
        if (verdict !== false) onRefused(client, sub, verdict)
        return cb(null, null)
      }
      onGranted(sub)
      // The same object goes back: aedes stores the original for persistent sessions, and a copy would
      // desynchronise the live and the stored subscription.
      cb(null, sub)
    }, err => cb(err as Error))
  }
}

/** aedes skips a delivery when authorizeForward returns null (and clears a persistent session's copy of it). */
export function chainAuthorizeForward (steps: readonly ForwardStep[]) {
  return <P extends PublishPacket>(client: Client, packet: P): P | null => {
    for (const step of steps) {
      if (!step(client, packet)) return null
    }
    return packet
  }
}
