import { encodeRecord } from './codec.js'
import { encodeClientId, willKey } from './layout.js'
import { plainCopy } from './packets.js'
import type { ClientRef, PacketLike } from './types.js'
import type { WriteQueue } from './write-queue.js'

/** Each client's will, in memory and on disk (`w!<client>`), tagged with the broker that stored it. */
export class Wills {
  readonly #queue: WriteQueue
  readonly #wills = new Map<string, Record<string, unknown>>()

  constructor (queue: WriteQueue) {
    this.#queue = queue
  }

  load (clientId: string, packet: Record<string, unknown>): void {
    this.#wills.set(clientId, packet)
  }

  async put (client: ClientRef, packet: PacketLike, brokerId: string | undefined): Promise<void> {
    packet.brokerId = brokerId
    packet.clientId = client.id
    const record = plainCopy(packet)
    const previous = this.#wills.get(client.id)
    this.#wills.set(client.id, record)
    await this.#queue.commit([{ type: 'put', key: willKey(encodeClientId(client.id)), value: encodeRecord(record) }], () => {
      if (this.#wills.get(client.id) !== record) return
      if (previous === undefined) this.#wills.delete(client.id)
      else this.#wills.set(client.id, previous)
    })
  }

  get (clientId: string): Record<string, unknown> | undefined {
    const will = this.#wills.get(clientId)
    return will === undefined ? undefined : { ...will }
  }

  /**
   * With a brokerId (aedes' dead-broker cleanup), only a will written by that broker is removed: the client may
   * have reconnected since and stored a new one.
   */
  async del (client: ClientRef): Promise<Record<string, unknown> | undefined> {
    const will = this.#wills.get(client.id)
    if (will === undefined) return undefined
    if (client.brokerId !== undefined && will.brokerId !== client.brokerId) return undefined
    this.#wills.delete(client.id)
    await this.#queue.commit([{ type: 'del', key: willKey(encodeClientId(client.id)) }], () => {
      if (!this.#wills.has(client.id)) this.#wills.set(client.id, will)
    })
    return { ...will }
  }

  /**
   * Wills of brokers not in `brokers` (aedes passes the live ones with their last heartbeat), for aedes to publish.
   * A will with an MQTT 5 Will Delay Interval is not one of them: the broker publishes it when its delay is over
   * (src/will-delay/), which aedes, publishing a dead broker's wills at once, would not wait for.
   */
  orphans (brokers: Record<string, unknown>): Array<Record<string, unknown>> {
    const wills: Array<Record<string, unknown>> = []
    for (const will of this.#wills.values()) {
      if (!brokers[String(will.brokerId)] && willDelaySeconds(will) === 0) wills.push({ ...will })
    }
    return wills
  }

  /** Every will with a Will Delay Interval, with the time it is due when its client has gone (`publishAt`). */
  delayed (): Array<Record<string, unknown>> {
    return [...this.#wills.values()].filter(will => willDelaySeconds(will) > 0).map(will => ({ ...will }))
  }

  /**
   * Marks the client's will as due at `publishAt` (its client has gone), or not due (undefined: it is back);
   * committed before it resolves, so the time survives a crash.
   */
  async due (clientId: string, publishAt: number | undefined): Promise<void> {
    const will = this.#wills.get(clientId)
    if (will === undefined || will.publishAt === publishAt) return
    const record = { ...will }
    if (publishAt === undefined) delete record.publishAt
    else record.publishAt = publishAt
    this.#wills.set(clientId, record)
    await this.#queue.commit([{ type: 'put', key: willKey(encodeClientId(clientId)), value: encodeRecord(record) }], () => {
      if (this.#wills.get(clientId) === record) this.#wills.set(clientId, will)
    })
  }
}

/** The MQTT 5 Will Delay Interval of a will, in seconds; 0 for none (and for every MQTT 3.1.1 will). */
export function willDelaySeconds (will: Record<string, unknown>): number {
  const delay = (will.properties as { willDelayInterval?: unknown } | undefined)?.willDelayInterval
  return typeof delay === 'number' && delay > 0 ? delay : 0
}
