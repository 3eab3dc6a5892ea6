import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { packetTypes } from './wire-tap.js'
import type { Totals } from './totals.js'
import type { Snapshot, SessionsOverview } from './snapshot.js'

/** What a scrape reads: the snapshot and the sessions overview taken just before the registry is rendered. */
export interface ScrapeState {
  snapshot: Snapshot
  overview: SessionsOverview
}

const qosLabels = ['0', '1', '2'] as const

const snake = (key: string): string => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()

/**
 * Exposes running totals kept as plain numbers by a feature (e.g. `{ loginFailures: 3, publishDenied: 1 }`) as one
 * counter family, one label value per key in snake case (`login_failures`), read at each scrape.
 */
export function countersFrom (registry: Registry, name: string, help: string, labelName: string, read: () => object): void {
  // eslint-disable-next-line no-new
  new Counter({
    name,
    help,
    labelNames: [labelName],
    registers: [registry],
    collect () {
      this.reset()
      for (const [key, value] of Object.entries(read())) {
        if (typeof value === 'number') this.inc({ [labelName]: snake(key) }, value)
      }
    }
  })
}

/**
 * The Prometheus registry of one broker. Every Culex metric reads the plain counts (Totals) or the scrape state in
 * its collect function, so the hot path never touches prom-client; Node.js process metrics (memory, event-loop
 * lag, GC) come from prom-client's default collectors.
 */
export function createRegistry (totals: Totals, state: () => ScrapeState, info: { version: string, brokerId: string }): Registry {
  const registry = new Registry()
  const registers = [registry]
  collectDefaultMetrics({ register: registry })

  const gauge = (name: string, help: string, read: (s: ScrapeState) => number): void => {
    // eslint-disable-next-line no-new
    new Gauge({ name, help, registers, collect () { this.set(read(state())) } })
  }
  /** A counter whose value is a running total kept elsewhere. */
  const total = (name: string, help: string, labelNames: string[], read: () => Array<[Record<string, string>, number]>): void => {
    // eslint-disable-next-line no-new
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect () {
        this.reset()
        for (const [labels, value] of read()) this.inc(labels, value)
      }
    })
  }
  const byQos = (values: number[]): Array<[Record<string, string>, number]> => qosLabels.map((qos, i) => [{ qos }, values[i]])

  new Gauge({ name: 'culex_info', help: 'Culex version and broker id (always 1).', labelNames: ['version', 'broker_id'], registers })
    .set({ version: info.version, broker_id: info.brokerId }, 1)
  gauge('culex_uptime_seconds', 'Seconds since the broker started.', s => s.snapshot.uptimeSeconds)

  gauge('culex_connections', 'Clients connected now.', s => s.snapshot.clients.connected)
  gauge('culex_connections_max', 'Most clients connected at once since start.', s => s.snapshot.clients.maximum)
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'culex_clients_connected',
    help: 'Clients connected now, by protocol version (3.1, 3.1.1, 5).',
    labelNames: ['protocol'],
    registers,
    collect () {
      for (const [protocol, n] of Object.entries(state().snapshot.clients.byProtocol)) this.set({ protocol }, n)
    }
  })
  total('culex_connections_accepted_total', 'Connections accepted (CONNACK 0).', [], () => [[{}, totals.connections]])
  total('culex_connections_refused_total', 'Connections refused, by CONNACK reason (closed_before_connack: closed or timed out before any CONNACK).', ['reason'],
    () => [...totals.refused].map(([reason, n]) => [{ reason }, n]))
  total('culex_clients_kicked_total', 'Clients disconnected through the admin API.', [], () => [[{}, totals.kicked]])
  total('culex_auth_failures_total', 'Authentication and authorization failures, by reason.', ['reason'],
    () => [...totals.authFailures].map(([reason, n]) => [{ reason }, n]))

  total('culex_packets_received_total', 'MQTT packets received, by type.', ['type'], () => packetTypes.flatMap((type, code) => type === 'reserved' ? [] : [[{ type }, totals.in.packets[code]]]))
  total('culex_packets_sent_total', 'MQTT packets sent, by type.', ['type'], () => packetTypes.flatMap((type, code) => type === 'reserved' ? [] : [[{ type }, totals.out.packets[code]]]))
  total('culex_bytes_received_total', 'MQTT bytes received (every packet, whole).', [], () => [[{}, totals.in.bytes]])
  total('culex_bytes_sent_total', 'MQTT bytes sent (every packet, whole).', [], () => [[{}, totals.out.bytes]])
  total('culex_messages_received_total', 'PUBLISH packets received from clients, by QoS.', ['qos'], () => byQos(totals.in.messages))
  total('culex_messages_sent_total', 'PUBLISH packets sent to clients, by QoS (retransmissions included).', ['qos'], () => byQos(totals.out.messages))
  total('culex_message_payload_bytes_received_total', 'Payload bytes of the PUBLISH packets received, by QoS.', ['qos'], () => byQos(totals.in.payloadBytes))
  total('culex_message_payload_bytes_sent_total', 'Payload bytes of the PUBLISH packets sent, by QoS.', ['qos'], () => byQos(totals.out.payloadBytes))
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'culex_inflight_messages',
    help: 'QoS 1/2 messages in flight on open connections: out = sent and not acknowledged, in = QoS 2 received and not completed.',
    labelNames: ['direction'],
    registers,
    collect () {
      this.set({ direction: 'out' }, totals.inflightOut)
      this.set({ direction: 'in' }, totals.inflightIn)
    }
  })

  gauge('culex_retained_messages', 'Retained messages stored.', s => s.snapshot.retained)
  gauge('culex_subscriptions', 'Subscriptions: those of persistent sessions (stored) plus those of connected clean sessions.', s => s.snapshot.subscriptions)
  gauge('culex_sessions_persistent', 'Persistent sessions in the store.', s => s.snapshot.sessions.persistent)
  gauge('culex_sessions_offline', 'Persistent sessions whose client is not connected.', s => s.overview.offline)
  gauge('culex_queued_messages', 'Messages queued for persistent sessions (in flight included).', s => s.snapshot.queued.messages)
  gauge('culex_queued_bytes', 'Payload bytes queued for persistent sessions.', s => s.snapshot.queued.bytes)
  gauge('culex_queued_oldest_age_seconds', 'Age of the oldest message queued for any persistent session (consumer lag); 0 when none is queued.',
    s => s.overview.oldestQueuedAt === undefined ? 0 : Math.max(0, (s.snapshot.time - s.overview.oldestQueuedAt) / 1000))
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'culex_session_queued_messages',
    help: 'Queued messages of the 10 deepest persistent sessions.',
    labelNames: ['client_id'],
    registers,
    collect () {
      this.reset()
      for (const s of state().overview.deepest) this.set({ client_id: s.clientId }, s.queued)
    }
  })
  total('culex_store_write_batches_total', 'LevelDB write batches committed.', [], () => [[{}, state().snapshot.store.writeBatches]])
  total('culex_store_write_failures_total', 'LevelDB write batches that failed (disk full, I/O error); their publishers got no acknowledgement.', [],
    () => [[{}, state().snapshot.store.writeFailures]])
  total('culex_store_dropped_messages_total', 'Queued or retained messages the store dropped (queue full, expired, retained limit).', [],
    () => [[{}, state().snapshot.store.droppedMessages]])
  return registry
}
