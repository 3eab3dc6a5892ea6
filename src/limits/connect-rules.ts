/**
 * Limits checked on CONNECT, before the password: client id length and characters, keepalive bounds. Every
 * violation is refused with CONNACK 2 (identifier rejected), which is also what Mosquitto sends an MQTT 3.1.1
 * client whose keepalive is over its max_keepalive.
 */
export interface ConnectLimits {
  /** In UTF-8 bytes. */
  maxClientIdLength: number
  /** Extra rule for client ids; control characters are always refused. */
  clientIdPattern: RegExp | undefined
  /** Above 0, a keepalive of 0 (never time out) is refused too. */
  minKeepaliveSeconds: number
  maxKeepaliveSeconds: number
}

export interface ConnectViolation { limit: string, detail: string }

// C0 and C1 controls and DEL: they corrupt terminals and log viewers and no client library generates them.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/** `clientId` as the client sent it ("" when it asked the broker to assign one). */
export function connectViolation (limits: ConnectLimits, clientId: string, keepalive: number): ConnectViolation | undefined {
  if (clientId !== '') {
    const bytes = Buffer.byteLength(clientId)
    if (bytes > limits.maxClientIdLength) return { limit: 'limits.maxClientIdLength', detail: `client id is ${bytes} bytes, over ${limits.maxClientIdLength}` }
    if (CONTROL.test(clientId)) return { limit: 'limits.clientIdPattern', detail: 'client id contains control characters' }
    if (limits.clientIdPattern !== undefined && !limits.clientIdPattern.test(clientId)) return { limit: 'limits.clientIdPattern', detail: `client id does not match ${limits.clientIdPattern.source}` }
  }
  if (keepalive === 0 && limits.minKeepaliveSeconds > 0) return { limit: 'limits.minKeepaliveSeconds', detail: 'keepalive 0 (no timeout) is not allowed' }
  if (keepalive !== 0 && keepalive < limits.minKeepaliveSeconds) return { limit: 'limits.minKeepaliveSeconds', detail: `keepalive ${keepalive} s is under ${limits.minKeepaliveSeconds} s` }
  if (keepalive > limits.maxKeepaliveSeconds) return { limit: 'limits.maxKeepaliveSeconds', detail: `keepalive ${keepalive} s is over ${limits.maxKeepaliveSeconds} s` }
  return undefined
}
