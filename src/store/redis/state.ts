import { Readable } from 'node:stream'
import { decodeRecord, encodeRecord } from '../codec.js'
import { droppedPacket, packetRecord, payloadBytes, payloadOf, plainCopy } from '../packets.js'
import type { ClientRef, PacketLike, StreamAppend } from '../types.js'
import { willDelaySeconds } from '../wills.js'
import { scanHash } from './scan.js'
import { readRetained } from '../retained-expiry.js'
import { defineScript, type Script } from './scripts.js'
import { DEL_WILL, EXPIRE_RETAINED, SET_WILL_ASIDE, STORE_RETAINED } from './state-scripts.js'
import { exec } from './subscriptions.js'
import { topicMatches } from '../../protocol/topic.js'
import { wildcardPrefix } from './topic-match.js'
import type { RedisDeps } from './write-order.js'

const NO_SUCH_PACKET = new Error('no such packet')

interface Pending {
  packet: Record<string, unknown>
  clean: boolean
  /** Written to Redis by the enqueue that carried it (see `carry`). */
  written?: boolean
}

/** A record an enqueue script writes with the message's entries (enqueues.ts): HSET key field value. */
export interface CarriedRecord {
  key: string
  field: string
  value: Buffer
  /** Stream entries appended in the same script (InboundRecordRef.appends). */
  appends: StreamAppend[]
  /** Called once the script that wrote it returned. */
  written: () => void
}

/** Inbound QoS 2 records, retained messages and wills on Redis. */
export class RedisState {
  readonly #d: RedisDeps
  /** QoS 2 records of this node's connections not written (yet, or ever for a clean session): see incomingWrite. */
  readonly #pending = new Map<string, Map<number, Pending>>()
  readonly #storeRetained: Script
  readonly #expireRetained: Script
  readonly #delWill: Script
  readonly #setWillAside: Script

  constructor (deps: RedisDeps) {
    this.#d = deps
    this.#storeRetained = defineScript(deps.redis, 'culexStoreRetained', STORE_RETAINED)
    this.#expireRetained = defineScript(deps.redis, 'culexExpireRetained', EXPIRE_RETAINED)
    this.#delWill = defineScript(deps.redis, 'culexDelWill', DEL_WILL)
    this.#setWillAside = defineScript(deps.redis, 'culexSetWillAside', SET_WILL_ASIDE)
  }

  // inbound QoS 2 ------------------------------------------------------------------------------------------------

  /** In memory at once (a resend is a duplicate from now on); in Redis only through `incomingWrite`. */
  incomingStore (client: ClientRef, packet: PacketLike): void {
    const messageId = Number(packet.messageId)
    const clean = client.clean === true
    let of = this.#pending.get(client.id)
    if (of === undefined) this.#pending.set(client.id, of = new Map())
    of.set(messageId, { packet: packetRecord(packet, {}), clean })
    // an older record of the id must not make the resend of a failed publish a duplicate
    if (!clean) void this.#d.order.track(this.#d.redis.hdel(this.#d.keys.incoming(client.id), String(messageId))).catch(() => undefined)
  }

  /**
   * The record a publish's enqueue writes in its own script, atomically with the message's queue entries (a kill -9
   * of the node leaves both or neither); undefined for a clean session or a record not pending here.
   */
  carry (client: ClientRef, messageId: number, appends: StreamAppend[] = []): CarriedRecord | undefined {
    const pending = this.#pending.get(client.id)?.get(messageId)
    if (pending === undefined || pending.clean) return undefined
    return { key: this.#d.keys.incoming(client.id), field: String(messageId), value: encodeRecord(pending.packet), appends, written: () => { pending.written = true } }
  }

  /** Writes the record if its enqueue did not (a record pending here that no enqueue carried). */
  incomingWrite (client: ClientRef, messageId: number): Promise<void> {
    const pending = this.#pending.get(client.id)?.get(messageId)
    if (pending === undefined || pending.clean) return this.#d.order.after()
    if (pending.written === true) {
      this.incomingForget(client, messageId, pending)
      return this.#d.order.after()
    }
    const write = this.#d.redis.hset(this.#d.keys.incoming(client.id), String(messageId), encodeRecord(pending.packet))
    return this.#d.order.track(write.then(() => { this.incomingForget(client, messageId, pending) }, (err: unknown) => {
      this.incomingForget(client, messageId, pending)
      throw err
    }))
  }

  /**
   * Drops a pending record. Without `only` (the publish failed): a record its enqueue wrote is deleted from Redis too,
   * so that the resend is new.
   */
  incomingForget (client: ClientRef, messageId: number, only?: Pending): void {
    const of = this.#pending.get(client.id)
    const pending = of?.get(messageId)
    if (of === undefined || pending === undefined || (only !== undefined && pending !== only)) return
    of.delete(messageId)
    if (of.size === 0) this.#pending.delete(client.id)
    if (only === undefined && pending.written === true) {
      this.#d.order.track(this.#d.redis.hdel(this.#d.keys.incoming(client.id), String(messageId))).catch((err: unknown) => {
        this.#d.logger.warn({ err, clientId: client.id, messageId }, 'QoS 2 record of a failed publish not deleted')
      })
    }
  }

  incomingGet (client: ClientRef, messageId: number): Promise<Record<string, unknown>> {
    const pending = this.#pending.get(client.id)?.get(messageId)
    if (pending !== undefined) return Promise.resolve({ ...pending.packet })
    if (client.clean === true) return Promise.reject(NO_SUCH_PACKET)
    return this.#d.redis.hgetBuffer(this.#d.keys.incoming(client.id), String(messageId)).then((value) => {
      if (value === null) throw NO_SUCH_PACKET
      return decodeRecord(value).fields
    })
  }

  async incomingDel (client: ClientRef, messageId: number): Promise<void> {
    const of = this.#pending.get(client.id)
    const pending = of?.get(messageId)
    if (pending !== undefined) this.incomingForget(client, messageId, pending)
    if (pending?.clean === true) return
    const removed = await this.#d.order.track(this.#d.redis.hdel(this.#d.keys.incoming(client.id), String(messageId)))
    if (removed === 0 && pending === undefined) throw new Error('no such packet')
  }

  incomingForgetAll (clientId: string): void {
    this.#pending.delete(clientId)
  }

  async incomingClean (clientId: string): Promise<void> {
    this.#pending.delete(clientId)
    await this.#d.order.track(this.#d.redis.del(this.#d.keys.incoming(clientId)))
  }

  // retained ------------------------------------------------------------------------------------------------------

  /** Upsert by topic, in Redis before it resolves; an empty payload deletes; over the limit a new topic is refused. */
  async storeRetained (packet: PacketLike): Promise<void> {
    const { redis, keys, limits, drops, order } = this.#d
    const topic = String(packet.topic)
    if (payloadBytes(payloadOf(packet)) === 0) {
      await order.track(redis.hdel(keys.retained, topic))
      return
    }
    // the arrival time: an MQTT 5 Message Expiry Interval counts from it (retained-expiry.ts)
    const value = encodeRecord(plainCopy(packet), { t: Date.now() })
    const stored = await order.track(this.#storeRetained([keys.retained], [topic, value, limits.maxRetainedMessages]))
    if (stored === 0) drops.report({ reason: 'retained-limit', packet: droppedPacket(packet) })
  }

  /**
   * Retained messages matching any of the filters, each once: exact filters by one read, wildcards by a HSCAN of their
   * literal prefix. An expired one is not sent but removed and reported (#expire).
   */
  retainedStream (filters: string[]): Readable {
    return Readable.from(this.#retained(filters), { objectMode: true })
  }

  async * #retained (filters: string[]): AsyncGenerator<Record<string, unknown>> {
    const { redis, keys, logger } = this.#d
    const seen = new Set<string>()
    const now = Date.now()
    const decoded = (topic: string, value: Buffer): Record<string, unknown> | undefined => {
      try {
        const read = readRetained(value, now)
        if (!read.expired) return read.fields
        this.#expire(topic, value, read.fields)
      } catch (err) {
        logger.error({ err, topic }, 'undecodable retained message skipped')
      }
      return undefined
    }
    for (const filter of filters) {
      const prefix = wildcardPrefix(filter)
      if (prefix === undefined) {
        if (seen.has(filter)) continue
        seen.add(filter)
        const value = await redis.hgetBuffer(keys.retained, filter)
        const fields = value === null ? undefined : decoded(filter, value)
        if (fields !== undefined) yield fields
        continue
      }
      for await (const page of scanHash(redis, keys.retained, prefix)) {
        for (const [topic, value] of page) {
          if (seen.has(topic) || !topicMatches(filter, topic)) continue
          seen.add(topic)
          const fields = decoded(topic, value)
          if (fields !== undefined) yield fields
        }
      }
    }
  }

  /**
   * Removes an expired retained message unless its topic was written since it was read; reported once, by the
   * reader (of any node) whose delete removed it.
   */
  #expire (topic: string, value: Buffer, fields: Record<string, unknown>): void {
    const { keys, order, drops, logger } = this.#d
    order.track(this.#expireRetained([keys.retained], [topic, value])).then((removed) => {
      if (removed === 1) drops.report({ reason: 'expired', packet: droppedPacket(fields) })
    }, (err: unknown) => { logger.warn({ err, topic }, 'expired retained message not removed') })
  }

  // wills ---------------------------------------------------------------------------------------------------------

  async putWill (client: ClientRef, packet: PacketLike, brokerId: string | undefined): Promise<void> {
    packet.brokerId = brokerId
    packet.clientId = client.id
    const tx = this.#d.redis.multi()
      .hset(this.#d.keys.wills, client.id, encodeRecord(plainCopy(packet)))
      .hset(this.#d.keys.willOwners, client.id, brokerId ?? '')
    await this.#d.order.track(exec(tx))
  }

  async getWill (clientId: string): Promise<Record<string, unknown> | undefined> {
    const value = await this.#d.redis.hgetBuffer(this.#d.keys.wills, clientId)
    return value === null ? undefined : decodeRecord(value).fields
  }

  /**
   * With a brokerId (a connection's end, aedes' dead-broker cleanup), only a will that broker wrote is removed, or
   * the one of its set aside. Without (a new connection of the client, on the run `self`), a will that another run
   * wrote and that has no delay is set aside rather than removed: that run's connection ended without its node
   * seeing it (a kill -9), and the survivor that takes the run for dead publishes it; a live run publishes it when it
   * closes the connection the new one took over. A delayed will is removed: the new connection cancels it.
   */
  async delWill (client: ClientRef, self?: string): Promise<Record<string, unknown> | undefined> {
    const { keys, redis, order } = this.#d
    const willKeys = [keys.wills, keys.willOwners, keys.willsAside]
    if (client.brokerId === undefined && self !== undefined) {
      const value = await redis.hgetBuffer(keys.wills, client.id)
      const will = value === null ? undefined : decodeRecord(value).fields
      const owner = will?.brokerId
      if (value !== null && typeof owner === 'string' && owner !== '' && owner !== self && willDelaySeconds(will ?? {}) === 0) {
        if (await order.track(this.#setWillAside(willKeys, [client.id, value, `${owner} ${client.id}`])) === 1) return will
      }
    }
    const value = await order.track(this.#delWill(willKeys, [client.brokerId ?? '', client.id]))
    return value === null ? undefined : decodeRecord(value as Buffer).fields
  }

  async wills (): Promise<Array<Record<string, unknown>>> {
    const all: Array<Record<string, unknown>> = []
    for await (const page of scanHash(this.#d.redis, this.#d.keys.wills)) {
      for (const [, value] of page) all.push(decodeRecord(value).fields)
    }
    return all
  }

  /** Wills of brokers not in `brokers`, without a Will Delay Interval (src/will-delay publishes those), those set aside too. */
  orphanWills (brokers: Record<string, unknown>): Readable {
    const self = this
    return Readable.from((async function * () {
      const aside: Array<Record<string, unknown>> = []
      for await (const page of scanHash(self.#d.redis, self.#d.keys.willsAside)) {
        for (const [, value] of page) aside.push(decodeRecord(value).fields)
      }
      for (const will of [...await self.wills(), ...aside]) {
        if (!brokers[String(will.brokerId)] && willDelaySeconds(will) === 0) yield will
      }
    })(), { objectMode: true })
  }

  async delayedWills (): Promise<Array<Record<string, unknown>>> {
    return (await this.wills()).filter(will => willDelaySeconds(will) > 0)
  }

  /**
   * A will is marked due only by the run that wrote it (`self`): a connection another node took over ends after the
   * new connection replaced the will, and marking that one due would have it published early (after a restart or the
   * death of the node its client is connected to now), though its client never left.
   */
  async willDue (clientId: string, publishAt: number | undefined, self: string | undefined): Promise<void> {
    const will = await this.getWill(clientId)
    if (will === undefined || will.publishAt === publishAt) return
    if (publishAt !== undefined && self !== undefined && will.brokerId !== self) return
    if (publishAt === undefined) delete will.publishAt
    else will.publishAt = publishAt
    await this.#d.order.track(this.#d.redis.hset(this.#d.keys.wills, clientId, encodeRecord(will)))
  }
}
