import { performance } from 'node:perf_hooks'
import type { Writable } from 'node:stream'
import type { Client } from 'aedes'
import type { ConnectStep } from '../hook-chain.js'
import { clientLogger } from '../log/client-log.js'
import type { Logger } from '../log/logger.js'
import type { BrokerMetrics } from '../metrics/index.js'
import { endsFlow, tapAcknowledgements } from '../protocol/packet-tap.js'
import { OutboundFrames, type Part } from './outbound-frames.js'
import { RetransmitTracker, type Resent } from './tracker.js'

interface Watched {
  client: Client
  conn: Writable
  tracker: RetransmitTracker
  frames: OutboundFrames
  /** Set while a retransmission is written, so the capture does not take it for a new packet. */
  resending: boolean
}

interface AckPacket { cmd: string, messageId?: number, reasonCode?: number }

/**
 * How often the sweeper looks for due packets: a quarter of the interval, so a packet is resent between
 * retryIntervalMs and 1.25 × retryIntervalMs after it was last sent, and never more often than every 25 ms or less
 * often than every second (which bounds the lateness of long intervals).
 */
export function sweepEveryMs (intervalMs: number): number {
  return Math.min(1000, Math.max(25, Math.floor(intervalMs / 4)))
}

/**
 * mqtt.retryIntervalMs: QoS 1/2 PUBLISH and PUBREL packets a connected client has not acknowledged are resent,
 * DUP set on a PUBLISH, with the same packet identifier, until it acknowledges them or disconnects (docs/protocol.md,
 * "Retransmission on a live connection"). The only retransmission code that touches aedes objects:
 *
 * - preConnect wraps client.conn.write and cuts what aedes writes into packets (OutboundFrames), so every way a
 *   packet goes out is seen: live and retained deliveries, the offline queue replayed at reconnect, shared
 *   deliveries, PUBREL after PUBREC and PUBREL replayed;
 * - PUBACK, PUBREC and PUBCOMP are read through the connection's packet tap (src/protocol/packet-tap.ts) before aedes handles them, for clean sessions too;
 * - one sweeper for the whole broker, running only while some connection has something unacknowledged, writes what
 *   is due to client.conn, in the order it was sent, and skips a connection whose socket is not taking data.
 */
export function createRetransmission (opts: { intervalMs: number, log: Logger }) {
  const { intervalMs, log } = opts
  // Packets resent since the start, by packet type.
  const counts: Resent = { publish: 0, pubrel: 0 }
  // Connections with something unacknowledged; the others cost the sweeper nothing.
  const active = new Set<Watched>()
  let sweeper: NodeJS.Timeout | undefined
  let closed = false

  const sweep = (): void => {
    const now = performance.now()
    for (const w of active) {
      if (w.client.closed || w.conn.destroyed || w.tracker.size === 0) {
        active.delete(w)
        continue
      }
      // Resent packets would only queue behind what the socket has not taken: wait for the drain.
      if (w.conn.writableNeedDrain || !w.frames.atBoundary) continue
      const resent = w.tracker.resendDue(now, parts => resend(w, parts))
      if (resent.publish + resent.pubrel === 0) continue
      counts.publish += resent.publish
      counts.pubrel += resent.pubrel
      if (log.isLevelEnabled('debug')) clientLogger(log, w.client).debug({ publishes: resent.publish, pubrels: resent.pubrel, unacknowledged: w.tracker.size }, 'unacknowledged packets resent')
    }
    if (active.size === 0) stop()
  }

  const resend = (w: Watched, parts: readonly Part[]): boolean => {
    w.resending = true
    let ok = true
    try {
      for (const part of parts) ok = Buffer.isBuffer(part) ? w.conn.write(part) : w.conn.write(part.text, part.encoding)
    } finally {
      w.resending = false
    }
    return ok
  }

  const stop = (): void => {
    clearInterval(sweeper)
    sweeper = undefined
  }

  const track = (w: Watched): void => {
    if (closed) return
    active.add(w)
    if (sweeper === undefined) {
      sweeper = setInterval(sweep, sweepEveryMs(intervalMs))
      sweeper.unref()
    }
  }

  /** preConnect: watches what is sent to the client and what it acknowledges. */
  const watchConnection: ConnectStep = (client) => {
    if (intervalMs === 0) return undefined
    const conn = client.conn as Writable
    const tracker = new RetransmitTracker(intervalMs)
    const w: Watched = {
      client,
      conn,
      tracker,
      resending: false,
      frames: new OutboundFrames(frame => {
        tracker.sent(frame, performance.now())
        track(w)
      })
    }
    const connWrite = conn.write
    conn.write = function capturingWrite (this: Writable, chunk: unknown, encoding?: unknown, cb?: unknown) {
      if (!w.resending && w.frames.usable) w.frames.write(chunk, typeof encoding === 'string' ? encoding as BufferEncoding : undefined)
      return (connWrite as (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean).call(this, chunk, encoding, cb)
    } as Writable['write']
    tapAcknowledgements(client, (ack: AckPacket) => {
      if (ack.messageId === undefined) return
      // a refusing PUBREC (MQTT 5) ends the flow: no PUBREL follows, nothing is resent
      if (endsFlow(ack)) tracker.completed(ack.messageId)
      else if (ack.cmd === 'pubrec') tracker.received(ack.messageId)
    })
    // What is still unacknowledged belongs to the session now: a persistent one resends it at the next connection.
    conn.on('close', () => {
      tracker.clear()
      active.delete(w)
    })
    return undefined
  }

  return {
    watchConnection,
    registerMetrics: (metrics: BrokerMetrics): void => {
      metrics.countersFrom('culex_retransmissions_total', 'Packets resent to a connected client that had not acknowledged them within mqtt.retryIntervalMs, by packet (publish, pubrel).', 'packet', () => counts)
    },
    /** The broker is stopping: nothing more is resent. */
    close: (): void => {
      closed = true
      stop()
      for (const w of active) w.tracker.clear()
      active.clear()
    }
  }
}
