import type { Logger } from '../log/logger.js'
import { decodeRecord } from './codec.js'
import type { ClientQueue, QueueTotals } from './outgoing-index.js'
import type { QueueEntry } from './queue-entry.js'
import { droppedPacket } from './packets.js'
import type { ValueReader } from './reader.js'
import type { DropEvent, DropReason, StoreLimits } from './types.js'
import type { WriteQueue } from './write-queue.js'

export interface Admission {
  accept: boolean
  /** Oldest waiting entries to remove so the new one fits (dropOldest). */
  evict: QueueEntry[]
  /** Which limit refused the message or evicted the entries: the session's own, or the broker-wide one. */
  reason: 'queue-full' | 'broker-queue-full'
}

/** The admission of nearly every message: one object for all of them (an enqueue asks for every copy queued). */
const ACCEPTED: Admission = Object.freeze({ accept: true, evict: Object.freeze([]) as unknown as QueueEntry[], reason: 'broker-queue-full' as const })

/**
 * Decides whether a message of `bytes` payload bytes may join `queue`. The session limits count only messages
 * waiting to be sent, like Mosquitto's max_queued_messages: in-flight messages must stay until acknowledged, so
 * dropOldest never removes them. The broker-wide limits count every entry of every session queue (`totals`), as
 * each one is memory; a session over them makes room only from its own waiting messages, never another session's.
 */
export function admit (queue: ClientQueue, bytes: number, limits: StoreLimits, totals: QueueTotals): Admission {
  const { maxQueuedMessages, maxQueuedBytes, maxTotalQueuedMessages, maxTotalQueuedBytes } = limits
  if ((maxQueuedMessages <= 0 || queue.waiting + 1 <= maxQueuedMessages) && (maxQueuedBytes <= 0 || queue.waitingBytes + bytes <= maxQueuedBytes) &&
    (maxTotalQueuedMessages <= 0 || totals.entries + 1 <= maxTotalQueuedMessages) && (maxTotalQueuedBytes <= 0 || totals.bytes + bytes <= maxTotalQueuedBytes)) return ACCEPTED
  return admitOverLimit(queue, bytes, limits, totals)
}

/**
 * admit() for a message over a limit: whether older waiting messages make room for it. A function of its own, so
 * the context its closures need is made only here.
 */
function admitOverLimit (queue: ClientQueue, bytes: number, limits: StoreLimits, totals: QueueTotals): Admission {
  const { maxQueuedMessages, maxQueuedBytes, maxTotalQueuedMessages, maxTotalQueuedBytes } = limits
  const fitsSession = (count: number, size: number): boolean =>
    (maxQueuedMessages <= 0 || count + 1 <= maxQueuedMessages) && (maxQueuedBytes <= 0 || size + bytes <= maxQueuedBytes)
  const fitsBroker = (freedCount: number, freedBytes: number): boolean =>
    (maxTotalQueuedMessages <= 0 || totals.entries - freedCount + 1 <= maxTotalQueuedMessages) &&
    (maxTotalQueuedBytes <= 0 || totals.bytes - freedBytes + bytes <= maxTotalQueuedBytes)
  const sessionFits = fitsSession(queue.waiting, queue.waitingBytes)
  const reason = sessionFits ? 'broker-queue-full' : 'queue-full'
  if (sessionFits && fitsBroker(0, 0)) return { accept: true, evict: [], reason }
  const tooBig = (maxQueuedBytes > 0 && bytes > maxQueuedBytes) || (maxTotalQueuedBytes > 0 && bytes > maxTotalQueuedBytes)
  if (limits.overflowPolicy === 'dropNewest' || tooBig) return { accept: false, evict: [], reason }
  const evict: QueueEntry[] = []
  let freed = 0
  let freedBytes = 0
  for (const entry of queue.oldestWaiting()) {
    evict.push(entry)
    freed++
    freedBytes += entry.bytes
    if (fitsSession(queue.waiting - freed, queue.waitingBytes - freedBytes) && fitsBroker(freed, freedBytes)) return { accept: true, evict, reason }
  }
  return { accept: false, evict: [], reason }
}

export function isExpired (entry: QueueEntry, now: number, expiryMs: number): boolean {
  return expiryMs > 0 && entry.cmd === 'publish' && entry.messageId === undefined && now - entry.enqueuedAt > expiryMs
}

/** A queued PUBLISH's MQTT 5 Message Expiry Interval in ms; undefined when it has none (every MQTT 3.1.1 message). */
export function messageExpiryMs (fields: Record<string, unknown>): number | undefined {
  const interval = (fields.properties as { messageExpiryInterval?: unknown } | undefined)?.messageExpiryInterval
  return typeof interval === 'number' && interval > 0 ? interval * 1000 : undefined
}

/**
 * The PUBLISH with its Message Expiry Interval less the whole seconds it waited since `storedAt` (epoch ms; in a
 * session queue, or as a retained message) ([MQTT-3.3.2-6]); at least 1, for a copy sent before it expired and
 * sent again. A copy of the fields: the stored record stays as it is.
 */
export function countedDown (fields: Record<string, unknown>, storedAt: number, now: number): Record<string, unknown> {
  const properties = fields.properties as { messageExpiryInterval: number }
  const waited = storedAt > 0 ? Math.floor((now - storedAt) / 1000) : 0
  return { ...fields, properties: { ...properties, messageExpiryInterval: Math.max(1, properties.messageExpiryInterval - waited) } }
}

const LOG_WINDOW_MS = 10_000

const messages: Record<DropReason, string> = {
  'queue-full': 'queue overflow',
  'broker-queue-full': 'queue overflow over all sessions',
  expired: 'queued message expired',
  'retained-limit': 'retained limit reached'
}

interface Window {
  count: number
  timer: NodeJS.Timeout
}

/**
 * Hands every drop to onDrop and logs it, at most one line per reason and client per 10 s: a full queue under
 * load drops on every publish, and one warn line per message would drown the log.
 */
export class DropReporter {
  readonly #log: Logger
  readonly #onDrop: ((event: DropEvent) => void) | undefined
  readonly #windows = new Map<string, Window>()
  dropped = 0

  constructor (log: Logger, onDrop: ((event: DropEvent) => void) | undefined) {
    this.#log = log
    this.#onDrop = onDrop
  }

  report (event: DropEvent): void {
    this.dropped++
    if (this.#onDrop !== undefined) {
      try {
        this.#onDrop(event)
      } catch (err) {
        this.#log.error({ err }, 'onDrop handler failed')
      }
    }
    const key = event.reason + '\u0000' + (event.clientId ?? '')
    const window = this.#windows.get(key)
    if (window !== undefined) {
      window.count++
      return
    }
    this.#write(event.reason, event.clientId, 1, event.packet.topic)
    this.#open(key, event.reason, event.clientId)
  }

  /** Logs what the open windows still hold and stops their timers. */
  close (): void {
    for (const [key, window] of this.#windows) {
      clearTimeout(window.timer)
      if (window.count > 0) {
        const [reason, clientId] = key.split('\u0000')
        this.#write(reason as DropReason, clientId === '' ? undefined : clientId, window.count)
      }
    }
    this.#windows.clear()
  }

  #open (key: string, reason: DropReason, clientId: string | undefined): void {
    const timer = setTimeout(() => {
      const window = this.#windows.get(key)
      this.#windows.delete(key)
      if (window !== undefined && window.count > 0) {
        this.#write(reason, clientId, window.count)
        this.#open(key, reason, clientId)
      }
    }, LOG_WINDOW_MS)
    timer.unref()
    this.#windows.set(key, { count: 0, timer })
  }

  #write (reason: DropReason, clientId: string | undefined, dropped: number, topic?: string): void {
    const fields: Record<string, unknown> = { reason, dropped }
    if (clientId !== undefined) fields.clientId = clientId
    if (topic !== undefined) fields.topic = topic
    this.#log.warn(fields, messages[reason])
  }
}

/**
 * Reports entries a queue overflow evicted, with their topic and payload read back, then queues their deletes in
 * the same tick: what onDrop writes synchronously (the dead letter) joins the same batch as the deletes. Resolves
 * once that batch is committed; never rejects: a failure is logged and handed back (the entries stay on disk, those
 * a live enqueue had not written yet excepted: their publishes fail with it, unacknowledged).
 */
export async function reportEvicted (deps: { queue: WriteQueue, reader: ValueReader, drops: DropReporter, logger: Logger }, evicted: Array<[ClientQueue, QueueEntry, DropReason]>): Promise<Error | undefined> {
  try {
    const values = await deps.reader.read(evicted.map(([, entry]) => entry.key))
    for (let i = 0; i < evicted.length; i++) {
      const entry = evicted[i][1]
      // a live enqueue's entry evicted before it was written: its value is in memory
      const value = entry.unwritten?.get(entry.qos, false) ?? values[i]
      const fields = value === undefined ? { topic: '' } : decodeRecord(value).fields
      deps.drops.report({ reason: evicted[i][2], clientId: evicted[i][0].clientId, packet: droppedPacket(fields) })
    }
    await deps.queue.commit(evicted.map(([, entry]) => ({ type: 'del', key: entry.key })))
    return undefined
  } catch (err) {
    // the entries stay on disk: after a restart they are queued again, not lost
    deps.logger.error({ err, evicted: evicted.length }, 'evicted messages not removed')
    return err as Error
  }
}
