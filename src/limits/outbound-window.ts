/**
 * limits.maxInflightMessages, per client. aedes completes a delivery only when the client's socket has taken it
 * (or mqtt.drainTimeoutMs ends the connection), so a client that stops reading holds the publishers whose
 * messages wait for it, and with them every subscriber of those publishers. Culex lets a connection stay backed
 * up for STALL_GRACE_MS, which a reader that is merely busy catches up within; after that the client counts as
 * stalled: what waits for it is completed at once, and at most `max` further messages are written behind it.
 * Over that a QoS 0 copy is dropped for that client (MQTT allows it) and a QoS 1/2 copy ends the connection as a
 * slow consumer; a persistent session keeps its undelivered messages in the store and gets them after it
 * reconnects. So one slow reader holds neither memory without bound nor anybody else.
 */
export const STALL_GRACE_MS = 1000

export type OutboundVerdict = 'deliver' | 'drop' | 'disconnect'

export class OutboundWindow {
  private held = 0

  constructor (private readonly max: number) {}

  /** Decides one delivery; `stalled` is whether the connection has been backed up for over STALL_GRACE_MS. */
  deliver (stalled: boolean, qos: number): OutboundVerdict {
    if (this.max === 0 || !stalled) return 'deliver'
    if (this.held >= this.max) return qos === 0 ? 'drop' : 'disconnect'
    this.held++
    return 'deliver'
  }

  /** The connection took everything it had buffered. */
  drained (): void {
    this.held = 0
  }

  get waiting (): number {
    return this.held
  }
}
