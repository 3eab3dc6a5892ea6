/**
 * limits.maxInflightMessages and limits.maxInflightBytes, per client. aedes completes a delivery only when the
 * client's socket has taken it (or mqtt.drainTimeoutMs ends the connection), so a client that stops reading holds
 * the publishers whose messages wait for it, and with them every subscriber of those publishers. Culex lets a
 * connection stay backed up for STALL_GRACE_MS, which a reader that is merely busy catches up within; after that the
 * client counts as stalled: what waits for it is completed at once, and further messages are queued behind it (in
 * its connection's buffer) up to both limits — as Mosquitto queues up to max_queued_messages for a slow client.
 * Over either limit a QoS 0 copy is dropped for that client (MQTT allows it) and a QoS 1/2 copy ends the connection
 * as a slow consumer; a persistent session keeps its undelivered messages in the store and gets them after it
 * reconnects, a clean session's are dead-lettered (`slow-consumer`). So one slow reader holds neither memory
 * without bound nor anybody else.
 */
export const STALL_GRACE_MS = 1000

export type OutboundVerdict = 'deliver' | 'drop' | 'disconnect'

export class OutboundWindow {
  private held = 0
  private heldBytes = 0

  /** 0 = no limit of that kind. */
  constructor (private readonly maxMessages: number, private readonly maxBytes: number) {}

  /** Decides one delivery of `bytes`; `stalled` is whether the connection has been backed up for over STALL_GRACE_MS. */
  deliver (stalled: boolean, qos: number, bytes: number): OutboundVerdict {
    if (!stalled) return 'deliver'
    if ((this.maxMessages > 0 && this.held >= this.maxMessages) || (this.maxBytes > 0 && this.heldBytes + bytes > this.maxBytes)) {
      return qos === 0 ? 'drop' : 'disconnect'
    }
    this.held++
    this.heldBytes += bytes
    return 'deliver'
  }

  /** The connection took everything it had buffered. */
  drained (): void {
    this.held = 0
    this.heldBytes = 0
  }

  /** The key of the limit that refused the last delivery. */
  get binding (): 'limits.maxInflightMessages' | 'limits.maxInflightBytes' {
    return this.maxMessages > 0 && this.held >= this.maxMessages ? 'limits.maxInflightMessages' : 'limits.maxInflightBytes'
  }

  get waiting (): number {
    return this.held
  }

  get waitingBytes (): number {
    return this.heldBytes
  }
}
