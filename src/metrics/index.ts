/**
 * What the broker counts and how it is read. Public API:
 *
 *   createMetrics({ aedes, store, version }): BrokerMetrics
 *     tapConnections(handle)  wraps the connection handler given to the listeners: every stream is counted on the
 *                             wire (packets, bytes, PUBLISH by QoS, in-flight) before aedes reads it
 *     snapshot()              every count, as plain numbers ($SYS, /api/stats, the console)
 *     render()                the Prometheus text exposition (/metrics)
 *     connection(client)      the wire counts of one connected client
 *     counter/gauge/histogram register a feature's own metric in this broker's registry
 *     countersFrom(name, help, label, read)  exposes a feature's plain running totals as one counter family
 *     authFailure(reason)     counts an authentication or authorization failure (CONNACK 4/5 are counted already)
 *     kicked()                counts a client disconnected by the admin API
 */
import type { Aedes, Client } from 'aedes'
import { Counter, Gauge, Histogram, type CounterConfiguration, type GaugeConfiguration, type HistogramConfiguration, type Registry } from 'prom-client'
import type { ConnectionHandler } from '../listeners/index.js'
import { countConnections } from './aedes-events.js'
import { connectionStats, tapConnection, type ConnectionStats } from './connection-tap.js'
import { countersFrom, createRegistry, type ScrapeState } from './prometheus.js'
import { cleanSubscriptionsOf, clientsOf, liveCleanSubscriptions, sessionsOverview, takeSnapshot, type MetricsStore, type SessionsOverview, type Snapshot } from './snapshot.js'
import { Totals } from './totals.js'

export type { Snapshot, SessionsOverview, MetricsStore } from './snapshot.js'
export type { ConnectionStats } from './connection-tap.js'

type Config<C> = Omit<C, 'registers'>

export interface BrokerMetrics {
  readonly registry: Registry
  readonly totals: Totals
  tapConnections: (handle: ConnectionHandler) => ConnectionHandler
  snapshot: () => Promise<Snapshot>
  overview: () => Promise<SessionsOverview>
  render: () => Promise<string>
  connection: (client: Client) => ConnectionStats | undefined
  counter: <L extends string>(config: Config<CounterConfiguration<L>>) => Counter<L>
  gauge: <L extends string>(config: Config<GaugeConfiguration<L>>) => Gauge<L>
  histogram: <L extends string>(config: Config<HistogramConfiguration<L>>) => Histogram<L>
  countersFrom: (name: string, help: string, labelName: string, read: () => object) => void
  authFailure: (reason: string) => void
  kicked: () => void
}

/**
 * A sessions overview walks every persistent session. Reads share one for 250 ms, or for 20 times as long as the
 * last walk took, so walking never takes more than about 5% of the broker's time however many sessions there are.
 */
const OVERVIEW_MIN_TTL_MS = 250
const OVERVIEW_TTL_FACTOR = 20
/**
 * How long a scrape waits for a sessions overview before it shows the last one: a store that does not answer (a
 * cluster's Redis away or hung) must not take /metrics, /api/stats and $SYS down with it.
 */
const OVERVIEW_WAIT_MS = 1000

export function createMetrics (opts: { aedes: Aedes, store: MetricsStore, version: string }): BrokerMetrics {
  const { aedes, store } = opts
  const totals = new Totals()
  countConnections(aedes, totals)

  let cached: { at: number, overview: Promise<SessionsOverview> } | undefined
  let ttl = OVERVIEW_MIN_TTL_MS
  let last: SessionsOverview | undefined
  const overview = async (): Promise<SessionsOverview> => {
    if (cached === undefined || Date.now() - cached.at > ttl) {
      const at = Date.now()
      const walk = sessionsOverview(store, id => clientsOf(aedes)[id] !== undefined)
      cached = { at, overview: walk }
      walk.then((o) => {
        last = o
        ttl = Math.max(OVERVIEW_MIN_TTL_MS, (Date.now() - at) * OVERVIEW_TTL_FACTOR)
      }, () => { cached = undefined })
    }
    return await cached.overview
  }
  const countedOnly = (): SessionsOverview => ({ persistent: store.stats().sessions, offline: 0, deepest: [], oldestQueuedAt: undefined })
  const timelyOverview = async (): Promise<SessionsOverview> => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<SessionsOverview>(resolve => { timer = setTimeout(() => { resolve(last ?? countedOnly()) }, OVERVIEW_WAIT_MS) })
    try {
      return await Promise.race([overview(), late])
    } finally {
      clearTimeout(timer)
    }
  }

  // The state of the latest render(); read synchronously by the collect functions while the registry renders.
  let scrape: ScrapeState | undefined
  const registry = createRegistry(totals, () => {
    if (scrape !== undefined) return scrape
    const o = countedOnly()
    const clean = Object.values(clientsOf(aedes)).reduce((n, c) => n + cleanSubscriptionsOf(c), 0)
    return { overview: o, snapshot: takeSnapshot(totals, aedes, store, o, clean) }
  }, { version: opts.version, brokerId: aedes.id })
  const registers = [registry]

  const listener = {
    onPacket: totals.packet.bind(totals),
    onInflight: totals.inflight.bind(totals)
  }

  return {
    registry,
    totals,
    tapConnections: handle => (stream, req) => {
      tapConnection(stream, listener)
      handle(stream, req)
    },
    snapshot: async () => takeSnapshot(totals, aedes, store, await timelyOverview(), await liveCleanSubscriptions(aedes)),
    overview,
    render: async () => {
      const o = await timelyOverview()
      scrape = { overview: o, snapshot: takeSnapshot(totals, aedes, store, o, await liveCleanSubscriptions(aedes)) }
      return await registry.metrics()
    },
    connection: client => connectionStats(client.conn),
    counter: config => new Counter({ ...config, registers }),
    gauge: config => new Gauge({ ...config, registers }),
    histogram: config => new Histogram({ ...config, registers }),
    countersFrom: (name, help, labelName, read) => countersFrom(registry, name, help, labelName, read),
    authFailure: reason => totals.authFailure(reason),
    kicked: () => { totals.kicked++ }
  }
}
