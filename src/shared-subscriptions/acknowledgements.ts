import { isRejection } from '../protocol/packet-tap.js'
import { hexCode } from '../protocol/v5/acknowledgements.js'
import type { RemoteAck } from './cluster-port.js'
import type { IssuedIds } from './issued-ids.js'

/** An acknowledgement as the connection's packet tap hands it over (packets of other kinds come too). */
export interface AckPacket { cmd: string, messageId?: number, reasonCode?: number, properties?: { reasonString?: string } }

/**
 * The deliveries sent on a connection for groups owned by another node (cluster mode), by packet identifier: what
 * their acknowledgement answers. A connection is opaque here.
 */
export class RemoteAcks<C extends object> {
  readonly #byConnection = new WeakMap<C, Map<number, (ack: RemoteAck) => void>>()

  expect (conn: C, id: number, answer: (ack: RemoteAck) => void): void {
    let ids = this.#byConnection.get(conn)
    if (ids === undefined) this.#byConnection.set(conn, ids = new Map())
    ids.set(id, answer)
  }

  get (conn: C, id: number): ((ack: RemoteAck) => void) | undefined {
    return this.#byConnection.get(conn)?.get(id)
  }

  delete (conn: C, id: number): void {
    this.#byConnection.get(conn)?.delete(id)
  }
}

/** Where the acknowledgements of a node's shared deliveries go: its engine, or the node owning the group. */
export interface AckTargets<C extends object> {
  issued: IssuedIds<C>
  remote: RemoteAcks<C>
  engine: { ack: (conn: C, id: number) => unknown, reject: (conn: C, id: number, why: string, redispatch: boolean) => unknown }
  /** sharedSubscriptions.redispatchRejected: an MQTT 5 refusal sends the message to another member. */
  redispatchRejected: boolean
}

/**
 * A member's PUBACK, PUBREC or PUBCOMP: if it answers a shared delivery (an id in `issued`), the group hears of it;
 * an acknowledgement of the session's own deliveries is left alone.
 */
export function acknowledgeShared<C extends { id: string }> (to: AckTargets<C>, conn: C, packet: AckPacket): void {
  if (packet.cmd !== 'puback' && packet.cmd !== 'pubrec' && packet.cmd !== 'pubcomp') return
  const id = packet.messageId
  if (id === undefined || !to.issued.has(conn, id)) return
  // a delivery made here for a group another node owns is answered to that node
  const remote = to.remote.get(conn, id)
  if (packet.cmd !== 'pubrec' && remote !== undefined) to.remote.delete(conn, id)
  if (isRejection(packet)) {
    // MQTT 5: the member refused it; another member gets it (the group's backoff, maxDeliveries), unless
    // redispatchRejected is off
    to.issued.end(conn, id)
    const reasonString = packet.properties?.reasonString
    const why = `${packet.cmd.toUpperCase()} reason code ${hexCode(packet.reasonCode ?? 0)}${reasonString === undefined ? '' : `, reason string ${JSON.stringify(reasonString)}`} from ${conn.id}`
    if (remote !== undefined) remote({ kind: 'reject', why, redispatch: to.redispatchRejected })
    else to.engine.reject(conn, id, why, to.redispatchRejected)
  } else if (packet.cmd === 'pubrec') {
    // Received by the member: a QoS 2 message it has PUBREC'd is never sent to anyone else.
    to.issued.received(conn, id)
    ackDelivery(to, conn, id, remote)
  } else {
    if (packet.cmd === 'puback') ackDelivery(to, conn, id, remote)
    to.issued.end(conn, id)
  }
}

function ackDelivery<C extends object> (to: AckTargets<C>, conn: C, id: number, remote: ((ack: RemoteAck) => void) | undefined): void {
  if (remote !== undefined) remote({ kind: 'ack' })
  else to.engine.ack(conn, id)
}
