import { encodeClientId, incomingKey } from './layout.js'
import type { WriteOp } from './write-queue.js'

const NO_SUCH_PACKET = new Error('no such packet')

interface IncomingRecord {
  packet: Record<string, unknown>
  /** false for clean-session clients: their QoS 2 state dies with the connection, so it never touches disk. */
  onDisk: boolean
  /** A persistent client's record not written yet: its encoding, written once the publish is stored (see write). */
  unwritten?: Buffer
}

/**
 * Inbound QoS 2 packets awaiting PUBREL, all in memory so incomingGetPacket (called for every QoS 2 PUBLISH and
 * PUBREL) never reads LevelDB. Persistent clients' records are also on disk; clean clients' are not.
 */
export class IncomingIndex {
  readonly #byClient = new Map<string, Map<number, IncomingRecord>>()

  load (clientId: string, messageId: number, packet: Record<string, unknown>): void {
    this.#set(clientId, messageId, { packet, onDisk: true })
  }

  get (clientId: string, messageId: number): Record<string, unknown> | undefined {
    const record = this.#byClient.get(clientId)?.get(messageId)
    return record === undefined ? undefined : { ...record.packet }
  }

  /**
   * get() as aedes wants it: a rejection means "new". aedes asks this for every new QoS 2 PUBLISH, so the rejection
   * is made without a throw and its error is one shared object (a fresh one per call, with its stack trace, cost
   * more than the rest of the lookup).
   */
  lookup (clientId: string, messageId: number): Promise<Record<string, unknown>> {
    const found = this.get(clientId, messageId)
    return found === undefined ? Promise.reject(NO_SUCH_PACKET) : Promise.resolve(found)
  }

  /**
   * Records the packet in memory; `value` is its encoding for disk, undefined for a clean client. The disk write is
   * not made here but by `write`, in the batch of the publish's enqueue (see LevelStore#outgoingEnqueueCombi). Returns
   * the delete of an older record of the id left on disk, if any.
   */
  store (clientId: string, messageId: number, packet: Record<string, unknown>, value: Buffer | undefined): WriteOp[] {
    const previous = this.#byClient.get(clientId)?.get(messageId)
    const record: IncomingRecord = { packet, onDisk: false }
    if (value !== undefined) record.unwritten = value
    this.#set(clientId, messageId, record)
    return previous?.onDisk === true ? [{ type: 'del', key: incomingKey(encodeClientId(clientId), messageId) }] : []
  }

  /**
   * The write of a record `store` left unwritten, and how to forget the record if that write fails (the publisher's
   * resend is then new, and stored again). undefined when there is nothing to write.
   */
  write (clientId: string, messageId: number): { ops: WriteOp[], undo: () => void } | undefined {
    const record = this.#byClient.get(clientId)?.get(messageId)
    const value = record?.unwritten
    if (record === undefined || value === undefined) return undefined
    record.unwritten = undefined
    record.onDisk = true
    const undo = (): void => {
      if (this.#byClient.get(clientId)?.get(messageId) === record) this.#delete(clientId, messageId)
    }
    return { ops: [{ type: 'put', key: incomingKey(encodeClientId(clientId), messageId), value }], undo }
  }

  /**
   * Drops the record of a publish that failed (the resend must be taken as new); returns its delete if its enqueue
   * had written it already. Any record of the id is that publish's: incomingStorePacket replaced an older one.
   */
  forget (clientId: string, messageId: number): WriteOp[] {
    return this.delete(clientId, messageId) ?? []
  }

  /** Removes one record; undefined if there was none, else the delete to commit (none if it was memory only). */
  delete (clientId: string, messageId: number): WriteOp[] | undefined {
    const record = this.#byClient.get(clientId)?.get(messageId)
    if (record === undefined) return undefined
    this.#delete(clientId, messageId)
    return record.onDisk ? [{ type: 'del', key: incomingKey(encodeClientId(clientId), messageId) }] : []
  }

  /** Removes every record of exactly this client id; returns the deletes for the ones on disk. */
  clean (clientId: string): WriteOp[] {
    const records = this.#byClient.get(clientId)
    if (records === undefined) return []
    this.#byClient.delete(clientId)
    const enc = encodeClientId(clientId)
    const ops: WriteOp[] = []
    for (const [messageId, record] of records) {
      if (record.onDisk) ops.push({ type: 'del', key: incomingKey(enc, messageId) })
    }
    return ops
  }

  onDiskCount (clientId: string): number {
    let count = 0
    for (const record of this.#byClient.get(clientId)?.values() ?? []) {
      if (record.onDisk) count++
    }
    return count
  }

  /** Client ids with at least one record on disk (those are persistent sessions). */
  * persistentClientIds (): Generator<string> {
    for (const [clientId, records] of this.#byClient) {
      for (const record of records.values()) {
        if (record.onDisk) {
          yield clientId
          break
        }
      }
    }
  }

  #set (clientId: string, messageId: number, record: IncomingRecord): void {
    let records = this.#byClient.get(clientId)
    if (records === undefined) {
      records = new Map()
      this.#byClient.set(clientId, records)
    }
    records.set(messageId, record)
  }

  #delete (clientId: string, messageId: number): void {
    const records = this.#byClient.get(clientId)
    if (records === undefined) return
    records.delete(messageId)
    if (records.size === 0) this.#byClient.delete(clientId)
  }
}
