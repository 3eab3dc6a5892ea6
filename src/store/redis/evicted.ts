import { decodeRecord } from '../codec.js'
import { droppedPacket } from '../packets.js'
import { scanKeys } from './scan.js'
import type { DropReason } from '../types.js'
import { defineScript, FORGET_EVICTED, RESTORE_EVICTED, type Script } from './scripts.js'
import type { RedisDeps } from './write-order.js'

/** What the enqueue script's negative answers mean, and which limit each eviction made room under (scripts.ts). */
export const REFUSED: Record<number, DropReason> = { [-1]: 'queue-full', [-2]: 'broker-queue-full' }
/** The enqueue script's answer for a QoS 0 copy it did not queue: the session's client is connected to a live node. */
export const CONNECTED_ELSEWHERE = -3

/**
 * Messages dropOldest evicted from session queues, between the enqueue script that took them out of their queue
 * (leaving them in the queue's hashes, listed in `qe:<client>`) and their dead letters. As with LevelDB, an evicted
 * message is never in neither the queue nor the dead-letter log: its entry is deleted only after the dead-letter
 * feature's write, and a process that dies in between leaves it to `restore`, which puts it back in its queue.
 */
export class EvictedEntries {
  readonly #deps: RedisDeps
  readonly #unmirror: (clientId: string, seq: number) => void
  readonly #forget: Script
  readonly #restore: Script

  constructor (deps: RedisDeps, unmirror: (clientId: string, seq: number) => void) {
    this.#deps = deps
    this.#unmirror = unmirror
    this.#forget = defineScript(deps.redis, 'culexForgetEvicted', FORGET_EVICTED)
    this.#restore = defineScript(deps.redis, 'culexRestoreEvicted', RESTORE_EVICTED)
  }

  /**
   * Reports what the enqueue evicted ({ client index, seq, packet, -1 | -2: the limit } quadruples), each to the
   * dead-letter feature, which writes its dead letter as it is reported; then deletes them (already off the totals). Redis applies those writes before the deletes (one
   * connection, in order).
   */
  report (clientIds: string[], evicted: Array<number | Buffer>): void {
    const seqs = new Map<string, number[]>()
    for (let i = 0; i < evicted.length; i += 4) {
      const clientId = clientIds[evicted[i] as number]
      const seq = evicted[i + 1] as number
      this.#unmirror(clientId, seq)
      this.#deps.drops.report({ reason: REFUSED[evicted[i + 3] as number], clientId, packet: droppedPacket(decodeRecord(evicted[i + 2] as Buffer).fields) })
      seqs.set(clientId, [...seqs.get(clientId) ?? [], seq])
    }
    for (const [clientId, of] of seqs) {
      const k = this.#deps.keys
      this.#deps.order.track(this.#forget([k.queue(clientId), k.queueMessages(clientId), k.queueIndex(clientId), k.queueEvicted(clientId)], of))
        .catch((err: unknown) => { this.#deps.logger.warn({ err, clientId }, 'evicted messages not deleted') })
    }
  }

  /** Puts back into their queues, and on the totals, the evicted entries whose dead letters were never written (a crash in between). */
  async restore (): Promise<void> {
    const { redis, keys, order } = this.#deps
    const { match, clientId } = keys.perClient('qe')
    for await (const found of scanKeys(redis, match)) {
      for (const key of found) {
        const id = clientId(key)
        await order.track(this.#restore([keys.queue(id), keys.queueIndex(id), key, keys.queueTotals], []))
      }
    }
  }
}
