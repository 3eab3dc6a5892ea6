import type { Aedes, PublishPacket, Subscription } from 'aedes'
import type { Logger } from '../log/logger.js'
import type { Snapshot } from '../metrics/index.js'
import { LoadAverage, loadPeriods } from './load-average.js'

/**
 * The `$SYS/broker/...` tree, with Mosquitto's topic names and payload formats, published every `intervalMs` by the
 * broker itself (QoS 0, not retained: nothing is written to the store). A client that subscribes to a `$SYS` filter
 * triggers one extra round at once, so it sees every value without waiting for the next interval (what
 * Mosquitto's retained $SYS messages give).
 */

/** Running totals that have Mosquitto load averages, by their name under $SYS/broker/load/. */
const loadSources: Record<string, (s: Snapshot) => number> = {
  'messages/received': s => s.packets.received,
  'messages/sent': s => s.packets.sent,
  'publish/received': s => sum(s.messages.received),
  'publish/sent': s => sum(s.messages.sent),
  'publish/dropped': s => s.messages.dropped,
  'bytes/received': s => s.bytes.received,
  'bytes/sent': s => s.bytes.sent,
  'connections': s => s.clients.accepted
}

/** The names under $SYS/broker/load/ (each with 1min, 5min and 15min). */
export const loadSourceNames = Object.keys(loadSources)

export interface SysState {
  version: string
  /** Highest heap use seen (for heap/maximum). */
  heapMaximum: number
  /** Load averages by load source name: [1min, 5min, 15min]. */
  loads: Record<string, number[]>
}

/** Every $SYS topic and its payload for one snapshot. */
export function sysTopics (s: Snapshot, state: SysState): Array<[string, string]> {
  const t: Array<[string, string]> = [
    ['version', `culex version ${state.version}`],
    ['uptime', `${s.uptimeSeconds} seconds`],
    ['clients/connected', s.clients.connected],
    ['clients/active', s.clients.connected],
    ['clients/disconnected', s.clients.disconnected],
    ['clients/inactive', s.clients.disconnected],
    ['clients/total', s.clients.total],
    ['clients/maximum', s.clients.maximum],
    ...Object.entries(s.clients.byProtocol).map(([protocol, n]) => [`clients/protocol/${protocol}`, n]),
    ['messages/received', s.packets.received],
    ['messages/sent', s.packets.sent],
    ['messages/stored', s.queued.messages + s.retained],
    ['store/messages/count', s.queued.messages + s.retained],
    ['store/messages/bytes', s.queued.bytes],
    ['publish/messages/received', sum(s.messages.received)],
    ['publish/messages/sent', sum(s.messages.sent)],
    ['publish/messages/dropped', s.messages.dropped],
    ['publish/bytes/received', sum(s.payloadBytes.received)],
    ['publish/bytes/sent', sum(s.payloadBytes.sent)],
    ['bytes/received', s.bytes.received],
    ['bytes/sent', s.bytes.sent],
    ['retained messages/count', s.retained],
    ['subscriptions/count', s.subscriptions],
    ['heap/current', s.memory.heapUsed],
    ['heap/maximum', Math.max(state.heapMaximum, s.memory.heapUsed)]
  ].map(([topic, value]) => [`$SYS/broker/${String(topic)}`, String(value)])
  for (const [name, averages] of Object.entries(state.loads)) {
    loadPeriods.forEach((period, i) => t.push([`$SYS/broker/load/${name}/${period.name}`, averages[i].toFixed(2)]))
  }
  return t
}

export interface SysTopics {
  /** Publishes the tree now (without moving the load averages). */
  publishNow: () => Promise<void>
  stop: () => void
}

export function startSysTopics (opts: { aedes: Aedes, snapshot: () => Promise<Snapshot>, intervalMs: number, version: string, log: Logger }): SysTopics {
  const { aedes, log } = opts
  const state: SysState = { version: opts.version, heapMaximum: 0, loads: {} }
  const averages = new Map<string, LoadAverage>()
  let stopped = false
  let last: Snapshot | undefined

  const publishAll = async (s: Snapshot): Promise<void> => {
    state.heapMaximum = Math.max(state.heapMaximum, s.memory.heapUsed)
    await Promise.all(sysTopics(s, state).map(async ([topic, value]) => {
      const packet = { cmd: 'publish', topic, payload: Buffer.from(value), qos: 0, retain: false, dup: false } as PublishPacket
      await new Promise<void>(resolve => aedes.publish(packet, err => {
        if (err != null && !stopped) log.warn({ topic, err: err.message }, 'sys topic publish failed')
        resolve()
      }))
    }))
  }

  const tick = async (): Promise<void> => {
    const s = await opts.snapshot()
    for (const [name, read] of Object.entries(loadSources)) {
      let avg = averages.get(name)
      if (avg === undefined) averages.set(name, avg = new LoadAverage(read(last ?? s), (last ?? s).time))
      state.loads[name] = avg.update(read(s), s.time)
    }
    last = s
    if (!stopped) await publishAll(s)
  }

  let pending: Promise<void> | undefined
  const publishNow = async (): Promise<void> => {
    pending ??= (async () => {
      // Let the SUBACK go out first.
      await new Promise(resolve => setImmediate(resolve))
      pending = undefined
      if (!stopped) await publishAll(await opts.snapshot())
    })()
    await pending
  }

  const onSubscribe = (subs: Subscription[]): void => {
    if (subs.some(sub => sub.topic.startsWith('$SYS'))) publishNow().catch(err => log.warn({ err }, 'sys topic publish failed'))
  }
  aedes.on('subscribe', onSubscribe)
  for (const name of Object.keys(loadSources)) state.loads[name] = [0, 0, 0]
  const timer = setInterval(() => {
    tick().catch(err => log.warn({ err }, 'sys topic publish failed'))
  }, opts.intervalMs)
  timer.unref()
  tick().catch(err => log.warn({ err }, 'sys topic publish failed'))
  log.info({ intervalMs: opts.intervalMs }, 'sys topics started')

  return {
    publishNow,
    stop: () => {
      stopped = true
      clearInterval(timer)
      aedes.removeListener('subscribe', onSubscribe)
    }
  }
}

function sum (values: number[]): number {
  return values.reduce((a, b) => a + b, 0)
}
