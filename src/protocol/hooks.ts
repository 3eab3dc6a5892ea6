import type { Client, Subscription } from 'aedes'
import type { ConnectStep, PublishStep, SubscribeStep } from '../hook-chain.js'
import type { BrokerInternals } from './aedes-internals.js'
import { routeDeliveries } from './delivery.js'
import { installPublishGate, type PublishGate } from './publish-gate.js'
import { isReservedTopic } from './topic.js'

export interface SubscriptionStore {
  addSubscriptions: (client: Client, subs: Subscription[]) => Promise<void>
}

/**
 * MQTT 3.1.1 behaviour that aedes 1.2 gets wrong, restored through its public hooks. Each step is chained by
 * src/broker.ts; see the notes on each for the aedes behaviour it corrects.
 */
export function createProtocolHooks (broker: BrokerInternals, store: SubscriptionStore) {
  const gate: PublishGate = installPublishGate(broker)
  const granted = new WeakSet<Subscription>()

  // aedes stores the whole SUBSCRIBE packet's list for a persistent session, refused filters included, and the
  // refused filter then receives messages after a reconnect. Only filters this broker granted reach the store.
  // Each granted filter triggers its own store call after its own authorization, so every one is stored.
  const addSubscriptions = store.addSubscriptions.bind(store)
  store.addSubscriptions = async (client, subs) => await addSubscriptions(client, subs.filter(s => granted.has(s)))

  const routeClientDeliveries: ConnectStep = (client) => {
    routeDeliveries(client)
    return undefined
  }

  // Only the broker publishes under "$" ($SYS, $DLQ, $share): a client's publish there is acknowledged and dropped.
  const refuseReservedTopics: PublishStep = (_client, packet) =>
    isReservedTopic(packet.topic) ? { drop: 'reserved-topic', detail: `clients cannot publish to ${packet.topic.split('/')[0]}/ topics` } : undefined

  // Shared subscriptions are not implemented yet: a $share/ filter would be a dead literal in aedes, so it is refused.
  const refuseSharedFilters: SubscribeStep = (_client, sub) => !sub.topic.startsWith('$share/')

  return {
    gate,
    routeClientDeliveries,
    refuseReservedTopics,
    refuseSharedFilters,
    recordGranted: (sub: Subscription) => { granted.add(sub) }
  }
}
