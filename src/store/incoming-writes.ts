import { encodeRecord } from './codec.js'
import type { IncomingIndex } from './incoming-index.js'
import { packetRecord } from './packets.js'
import type { ClientRef, InboundRecordRef, PacketLike } from './types.js'
import type { WriteQueue } from './write-queue.js'

/**
 * Inbound QoS 2 state as the LevelDB store keeps it: the index answers at once, and the ops it returns go through the
 * write queue, staged or committed according to what the step promises. Apart from LevelStore because when each
 * record reaches the disk (with the publish's enqueue, or on its own) is a durability argument of its own.
 */
export class IncomingWrites {
  readonly #index: IncomingIndex
  readonly #queue: WriteQueue

  constructor (index: IncomingIndex, queue: WriteQueue) {
    this.#index = index
    this.#queue = queue
  }

  /** In memory at once (a resend is a duplicate from now on); on disk only through `write` or `stage`. */
  store (client: ClientRef, packet: PacketLike): void {
    const record = packetRecord(packet, {})
    const value = client.clean === true ? undefined : encodeRecord(record)
    const ops = this.#index.store(client.id, Number(packet.messageId), record, value)
    if (ops.length > 0) this.#queue.stage(ops)
  }

  /** Stages a record into the next batch: the one its publish's queued copies are committed in. */
  stage (inbound: InboundRecordRef): void {
    const write = this.#index.write(inbound.client.id, inbound.messageId)
    if (write !== undefined) this.#queue.stage(write.ops, write.undo)
  }

  /**
   * Writes a persistent client's QoS 2 record if no enqueue carried it (a publish always does: this is the fallback
   * for a record recorded again meanwhile, a resend's). If this write fails the record is forgotten, and the resend
   * is stored again.
   */
  write (clientId: string, messageId: number): Promise<void> {
    const write = this.#index.write(clientId, messageId)
    return write === undefined ? Promise.resolve() : this.#queue.commit(write.ops, write.undo)
  }

  /**
   * The publish of a QoS 2 message failed: the resend is new. A record its enqueue wrote is deleted too (the failure
   * came later: a group queue, the cluster stream); the store logs a failed batch itself.
   */
  forget (clientId: string, messageId: number): void {
    const ops = this.#index.forget(clientId, messageId)
    if (ops.length > 0) this.#queue.commit(ops).catch(() => undefined)
  }

  async delete (clientId: string, messageId: number): Promise<void> {
    const ops = this.#index.delete(clientId, messageId)
    if (ops === undefined) throw new Error('no such packet')
    if (ops.length > 0) await this.#queue.commit(ops)
  }

  async clean (clientId: string): Promise<void> {
    const ops = this.#index.clean(clientId)
    if (ops.length > 0) await this.#queue.commit(ops)
  }
}
