import type { Client } from 'aedes'
import { DONE } from '../store/contract.js'
import type { StoredGroupMessage } from '../store/group-queue.js'
import type { SessionQueues } from '../store/types.js'
import type { MemberEvents } from './cluster-port.js'
import type { IssuedIds } from './issued-ids.js'
import type { RestoreStore } from './restore.js'

/** The store methods shared subscriptions read or wrap (CulexStore). */
export interface SharedStore extends RestoreStore {
  outgoingUpdate: (client: Client, packet: { cmd?: string, messageId?: number | null, brokerCounter?: number }) => Promise<void>
  readonly sessionQueues: Pick<SessionQueues, 'addPubrel'>
  /** A store the nodes of a cluster share: a group's queue as it is now. */
  groupQueueOf?: (key: string) => Promise<StoredGroupMessage[]>
  purgeSession: (clientId: string) => Promise<boolean>
  expireSession: (clientId: string, maxMs: number, now?: number) => Promise<boolean>
  cleanSubscriptions: (client: Client) => Promise<void>
}

/**
 * The store calls shared subscriptions answer: a shared delivery's session-queue record, and the end of a session
 * (its memberships end with it). `members` is read at each call: cluster mode replaces it before the start.
 */
export function wrapSharedStore (store: SharedStore, issued: IssuedIds<Client>, members: () => MemberEvents<Client>): void {
  // For a persistent member aedes records each delivery in the session queue; a shared delivery has no entry there
  // (the group queue holds it). Its PUBREL does go into the session, to be resent after a reconnect or a restart.
  const outgoingUpdate = store.outgoingUpdate.bind(store)
  // Not an async function: it runs for every delivery to a persistent session, and hands back the store's promise.
  store.outgoingUpdate = (client, packet) => {
    const shared = issued.sharedUpdate(client, packet)
    if (shared === 'pubrel') return store.sessionQueues.addPubrel(client, packet.messageId as number)
    if (shared === 'skip') return DONE
    return outgoingUpdate(client, packet)
  }
  // A session that ends (expiry, purge, a clean CONNECT with its id) takes its memberships with it.
  const purgeSession = store.purgeSession.bind(store)
  store.purgeSession = async (clientId) => {
    const existed = await purgeSession(clientId)
    members().sessionEnded(clientId)
    return existed
  }
  const expireSession = store.expireSession.bind(store)
  store.expireSession = async (clientId, maxMs, now) => {
    const expired = await expireSession(clientId, maxMs, now)
    if (expired) members().sessionEnded(clientId)
    return expired
  }
  const cleanSubscriptions = store.cleanSubscriptions.bind(store)
  store.cleanSubscriptions = async (client) => {
    await cleanSubscriptions(client)
    members().sessionEnded(client.id)
  }
}
