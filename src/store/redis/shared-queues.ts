import type { SharedQueues } from '../contract.js'
import type { RedisParts } from './redis-parts.js'

/**
 * The session queues as the cluster uses them (src/cluster): which sessions are held here, their claims, and the
 * entries other nodes queued for messages delivered here. Apart from redis-store.ts because this is the cluster's
 * side of the store, not the aedes persistence contract the rest of that class answers.
 */
export function sharedQueuesOf (p: Pick<RedisParts, 'outbox' | 'subs' | 'order'>): SharedQueues {
  return {
    setHere: (isHere, holder) => {
      p.outbox.isHere = isHere
      p.outbox.holder = holder
    },
    holdersOf: packet => p.outbox.holdersOf(packet),
    release: (client) => { p.outbox.release(client) },
    catchUp: async (client) => { await p.outbox.catchUp(client) },
    // matched fresh: the subscription may have been made on another node, which this node's matcher has not read yet
    // (those that carry their entries need no match)
    learn: async (messages) => {
      const unknown = messages.filter(m => m.queued === undefined)
      const matched = unknown.length === 0 ? [] : await p.subs.fresh(() => unknown.map(({ packet }) => p.subs.index.match(String(packet.topic)).map(s => s.clientId)))
      await p.outbox.learn([...messages.filter(m => m.queued !== undefined), ...unknown.map(({ packet }, i) => ({ packet, clientIds: matched[i] }))])
    },
    queuedCopies: packet => p.outbox.queuedCopies(packet),
    applied: async () => {
      p.outbox.flush()
      await p.order.idle()
    }
  }
}
