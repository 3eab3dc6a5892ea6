/**
 * A clean session's QoS 1/2 copies written to its connection and not yet acknowledged, so that a slow consumer's
 * disconnect can dead-letter them: once the connection is gone, nothing of a clean session is kept, and what sat
 * in the socket's buffers is lost too (a reader that resumes and acknowledges what it reads meets a reset). A
 * client acknowledges QoS 1 copies with PUBACK and QoS 2 copies with PUBREC in the order it received them
 * [MQTT-4.6.0-2][MQTT-4.6.0-3], so each acknowledgement settles the oldest copy of its QoS. Bounded by count and
 * bytes (a client that reads but never acknowledges would otherwise grow it for ever): past them the oldest are
 * forgotten.
 */
export class Unacknowledged<P> {
  // One list per QoS, made on the first copy of that QoS: most clean sessions never get a QoS 2 one, many no QoS 1 one.
  private q1: Queue<P> | undefined
  private q2: Queue<P> | undefined
  private count = 0
  private bytes = 0

  /** 0 = no bound of that kind. */
  constructor (private readonly maxMessages: number, private readonly maxBytes: number) {}

  sent (qos: 1 | 2, packet: P, payloadBytes: number): void {
    // the entry's own memory counts too, or many empty payloads would escape the bound
    const bytes = payloadBytes + ENTRY_BYTES
    const queue = qos === 1 ? (this.q1 ??= { list: [], head: 0 }) : (this.q2 ??= { list: [], head: 0 })
    queue.list.push({ packet, bytes })
    this.count++
    this.bytes += bytes
    while ((this.maxMessages > 0 && this.count > this.maxMessages) || (this.maxBytes > 0 && this.bytes > this.maxBytes)) {
      this.settleOldest(this.oldestQos())
    }
  }

  /** A PUBACK settles the oldest QoS 1 copy, a PUBREC the oldest QoS 2 one. */
  acknowledged (qos: 1 | 2): void {
    this.settleOldest(qos)
  }

  /** Every copy still unacknowledged, and forgets them. */
  take (): P[] {
    const out = [this.q1, this.q2].flatMap(q => q === undefined ? [] : q.list.slice(q.head).map(e => e.packet))
    this.q1 = this.q2 = undefined
    this.count = this.bytes = 0
    return out
  }

  get size (): number {
    return this.count
  }

  private oldestQos (): 1 | 2 {
    return this.q1 !== undefined && this.q1.head < this.q1.list.length ? 1 : 2
  }

  private settleOldest (qos: 1 | 2): void {
    const queue = qos === 1 ? this.q1 : this.q2
    if (queue === undefined || queue.head >= queue.list.length) return
    const { list, head } = queue
    this.count--
    this.bytes -= list[head].bytes
    // the settled entry is dropped now (it may hold a large payload); the array is compacted once half is settled
    list[head] = undefined as unknown as Entry<P>
    queue.head = head + 1
    if (queue.head * 2 >= list.length) {
      queue.list = list.slice(queue.head)
      queue.head = 0
    }
  }
}

interface Queue<P> { list: Array<Entry<P>>, head: number }

interface Entry<P> { packet: P, bytes: number }

const ENTRY_BYTES = 64
