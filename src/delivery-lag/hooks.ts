import type { Client } from 'aedes'
import type { ConnectStep } from '../hook-chain.js'
import { FastHistogram, type HistogramSeries } from '../metrics/fast-histogram.js'
import { endsFlow, tapAcknowledgements } from '../protocol/packet-tap.js'
import { observeSent } from '../protocol/sent-observer.js'
import { ConnectionLag } from './tracker.js'

interface AckPacket { cmd: string, messageId?: number, reasonCode?: number }

/** Seconds from a message's arrival to the subscriber's final acknowledgement: 1 ms to 10 minutes. */
export const ACK_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600] as const

export interface SessionLag {
  clientId: string
  unacked: number
  /** Age of its oldest unacknowledged message, ms. */
  oldestUnackedMs: number
}

/**
 * The only delivery-lag code that touches aedes objects: preConnect gives each connection a ConnectionLag, told of
 * every QoS 1/2 PUBLISH written to it (src/protocol/sent-observer.ts, from the delivery router and the queue replay)
 * and of PUBACK and PUBCOMP read through its packet tap (src/protocol/packet-tap.ts) before aedes handles them.
 */
export function createLagHooks () {
  const histogram = new FastHistogram({
    name: 'culex_delivery_ack_seconds',
    help: 'Time from a message\'s arrival at the broker to the subscriber\'s final acknowledgement (PUBACK for QoS 1, PUBCOMP for QoS 2), by delivered QoS and shared-subscription group ("" for an ordinary subscription).',
    buckets: ACK_BUCKETS
  })
  // The series of each (qos, group), so a delivery picks its series with one Map lookup (none for ordinary ones).
  const series: Array<Map<string, HistogramSeries>> = [new Map(), new Map(), new Map()]
  const ordinary: Array<HistogramSeries | undefined> = [undefined, undefined, undefined]
  const seriesFor = (qos: number, group: string): HistogramSeries => {
    if (group === '') return ordinary[qos] ?? (ordinary[qos] = histogram.series({ qos: String(qos), group }))
    const byGroup = series[qos]
    let s = byGroup.get(group)
    if (s === undefined) byGroup.set(group, s = histogram.series({ qos: String(qos), group }))
    return s
  }
  const open = new Map<Client, ConnectionLag>()

  const watchConnection: ConnectStep = (client) => {
    const lag = new ConnectionLag()
    open.set(client, lag)
    observeSent(client, { sent: (messageId, qos, arrivedAt, group) => lag.sent(messageId, arrivedAt, seriesFor(qos, group)) })
    tapAcknowledgements(client, (ack: AckPacket) => {
      if (endsFlow(ack) && ack.messageId !== undefined) lag.completed(ack.messageId, Date.now())
    })
    // What is still unacknowledged is the session's now: it is measured again when it is sent at the next connection.
    client.conn.once('close', () => {
      lag.clear()
      open.delete(client)
    })
    return undefined
  }

  /** Connected clients with unacknowledged messages, oldest first, at most `limit`. */
  const sessions = (limit: number, now = Date.now()): SessionLag[] => {
    const out: SessionLag[] = []
    for (const [client, lag] of open) {
      const oldest = lag.oldestArrival()
      if (oldest === undefined || typeof client.id !== 'string') continue
      out.push({ clientId: client.id, unacked: lag.unacked, oldestUnackedMs: Math.max(0, now - oldest) })
    }
    out.sort((a, b) => b.oldestUnackedMs - a.oldestUnackedMs)
    return out.slice(0, limit)
  }

  return { watchConnection, histogram, sessions }
}
