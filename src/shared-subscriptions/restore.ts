import type { Logger } from '../log/logger.js'
import type { GroupQueues } from '../store/contract.js'
import type { SharedEngine } from './engine.js'
import { isShareFilter, isShareName, parseShare, shareTopic, type ShareName } from './share-name.js'

/** The store methods a restore reads. */
export interface RestoreStore {
  readonly groupQueues: GroupQueues
  listSessions: () => Promise<string[]>
  subscriptionsByClient: (client: { id: string }) => Promise<Array<{ topic: string, qos: number }>>
}

/**
 * At start: the persistent sessions' `$share/` subscriptions become members again, and the durable group queues go
 * back to their groups; a queue whose group has no member left is deleted.
 */
export async function restoreShared<H> (store: RestoreStore, engine: SharedEngine<H>, log: Logger): Promise<void> {
  for (const id of await store.listSessions()) {
    for (const sub of await store.subscriptionsByClient({ id })) {
      const share = isShareFilter(sub.topic) ? parseShare(sub.topic) : undefined
      if (share !== undefined && isShareName(share)) engine.restoreMember(share, id, sub.qos)
    }
  }
  for (const [key, stored] of store.groupQueues.takeLoaded()) {
    if (engine.restoreQueue(key, stored)) {
      log.info({ share: shareTopic(key), messages: stored.length }, 'shared queue restored')
    } else {
      await store.groupQueues.remove(stored.map(s => s.key))
      log.warn({ share: shareTopic(key), messages: stored.length }, 'shared queue without members deleted')
    }
  }
}

/** The persistent sessions subscribed to one share, with their QoS (cluster mode: a node taking a group over). */
export async function storedMembers (store: RestoreStore, share: ShareName): Promise<Array<{ clientId: string, qos: number }>> {
  const topic = shareTopic(share.key)
  const out: Array<{ clientId: string, qos: number }> = []
  for (const id of await store.listSessions()) {
    const sub = (await store.subscriptionsByClient({ id })).find(s => s.topic === topic)
    if (sub !== undefined) out.push({ clientId: id, qos: sub.qos })
  }
  return out
}

/** Every share a persistent session subscribes to. */
export async function storedShares (store: RestoreStore): Promise<ShareName[]> {
  const found = new Map<string, ShareName>()
  for (const id of await store.listSessions()) {
    for (const sub of await store.subscriptionsByClient({ id })) {
      const share = isShareFilter(sub.topic) ? parseShare(sub.topic) : undefined
      if (share !== undefined && isShareName(share)) found.set(share.key, share)
    }
  }
  return [...found.values()]
}
