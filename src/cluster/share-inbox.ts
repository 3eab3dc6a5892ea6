import type { Redis } from 'ioredis'
import type { Logger } from '../log/logger.js'
import type { DeliveryPacket } from '../protocol/aedes-internals.js'
import { decodeEntry } from './codec.js'

/** Entries read from the inboxes in one XREAD. */
const READ_COUNT = 200
/** How long one XREAD blocks (a group taken over meanwhile ends it at once: CLIENT UNBLOCK). */
const BLOCK_MS = 5000

export interface Inbox {
  /** The inbox stream. */
  stream: string
  /** The last entry taken in. */
  lastId: string
  /** `<broker id>:<counter>` of the messages the group's restored queue holds: read again, they are skipped. */
  restored: Set<string>
}

/**
 * The owner's side of the groups' inboxes: one connection reads the inbox of every group this node owns, from the
 * last entry it took in; each message goes to the group's engine and leaves the inbox once the engine has it (in
 * the group's durable queue for a durable group). A node that takes a group over reads its inbox from the start:
 * what the former owner had not taken in is still there, what it had is in the queue it restores.
 */
export interface InboxOwner {
  /** The groups this node owns, with their inboxes. */
  inboxes: () => Map<string, Inbox>
  /**
   * Which of these groups this node still owns, asked of Redis before a batch is taken in: a node that was stopped
   * (SIGSTOP) or cut off longer than its lease must not take in what the group's new owner reads too.
   */
  stillOwned: (keys: string[]) => Promise<Set<string>>
  take: (key: string, packet: DeliveryPacket) => Promise<void>
}

export function readShareInboxes (reader: Redis, writer: Redis, owner: InboxOwner, log: Logger) {
  const take = owner.take
  let closed = false
  let failing = false
  let wake: (() => void) | undefined
  /** The reader's connection id, for CLIENT UNBLOCK; asked again after a reconnection. */
  let readerId: number | undefined
  let blocked = false
  reader.on('close', () => { readerId = undefined })

  const loop = async (): Promise<void> => {
    while (!closed) {
      const open = [...owner.inboxes()]
      if (open.length === 0) {
        await new Promise<void>(resolve => { wake = resolve })
        continue
      }
      let reply: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null
      try {
        readerId ??= Number(await reader.client('ID'))
        blocked = true
        reply = await reader.xreadBuffer('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', ...open.map(([, i]) => i.stream), ...open.map(([, i]) => i.lastId)) as typeof reply
        blocked = false
        if (failing) log.info('shared group inboxes read again')
        failing = false
      } catch (err) {
        if (closed) return
        blocked = false
        if (!failing) log.warn({ err }, 'shared group inboxes not read; trying again once Redis answers')
        failing = true
        await new Promise(resolve => setTimeout(resolve, 100))
        continue
      }
      const mine = reply === null ? new Set<string>() : await owner.stillOwned(open.map(([key]) => key)).catch(() => new Set<string>())
      for (const [streamName, entries] of reply ?? []) {
        const stream = streamName.toString()
        const found = open.find(([, i]) => i.stream === stream)
        if (found === undefined) continue
        const [key, inbox] = found
        if (!mine.has(key)) continue
        const work: Array<Promise<void>> = []
        const ids: string[] = []
        for (const [rawId, fields] of entries) {
          const id = inbox.lastId = rawId.toString()
          const entry = decodeEntry(fields)
          if (entry?.kind !== 'message' || inbox.restored.delete(`${entry.packet.brokerId ?? ''}:${String(entry.packet.brokerCounter)}`)) {
            ids.push(id)
            continue
          }
          // one the group could not store stays in the inbox, for the next owner
          work.push(take(key, entry.packet).then(() => { ids.push(id) }, (err: unknown) => log.error({ err, key }, 'shared group message not taken in')))
        }
        await Promise.all(work)
        // taken in: in the group's queue (durable) or in this node's memory, as on one node
        if (ids.length > 0) writer.xdel(stream, ...ids).catch(() => {})
      }
    }
  }
  void loop()
  return {
    /** A group was taken over: its inbox joins the reads. */
    wake: () => {
      wake?.()
      wake = undefined
      // a read blocked on the other inboxes would take this one in only once it returns
      if (blocked && readerId !== undefined) writer.client('UNBLOCK', readerId).catch(() => {})
    },
    close: () => {
      closed = true
      wake?.()
      reader.disconnect()
    }
  }
}
