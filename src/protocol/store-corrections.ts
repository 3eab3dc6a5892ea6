import type { Subscription } from 'aedes'
import type { SubscribeStep } from '../hook-chain.js'
import type { ProtocolStore } from './hooks.js'
import type { PublishGate } from './publish-gate.js'

type CorrectedStore = Pick<ProtocolStore, 'addSubscriptions' | 'subscriptionsByClient' | 'hasSession' | 'incomingDelPacket' | 'incomingGetPacket'>

/**
 * The store calls aedes makes, corrected where aedes asks the wrong thing of a durable store. Returns what the
 * subscribe steps need: the set the last step records each granted filter in, and the step that refuses the
 * session marker.
 */
export function correctStoreCalls (store: CorrectedStore, gate: PublishGate): { granted: WeakSet<Subscription>, refuseSessionMarker: SubscribeStep } {
  const granted = new WeakSet<Subscription>()

  // aedes stores the whole SUBSCRIBE packet's list for a persistent session, refused filters included, and the
  // refused filter then receives messages after a reconnect. Only filters this broker granted reach the store.
  // Each granted filter triggers its own store call after its own authorization, so every one is stored.
  const addSubscriptions = store.addSubscriptions.bind(store)
  store.addSubscriptions = async (client, subs) => await addSubscriptions(client, subs.filter(s => granted.has(s)))

  // aedes sets Session Present only when the session has subscriptions, but a session exists without them
  // [MQTT-3.2.2-2]. For such a session aedes is given one marker filter to restore; the first subscribe step
  // refuses it, so Session Present is 1 and nothing is subscribed.
  const sessionMarkers = new WeakSet<object>()
  const subscriptionsByClient = store.subscriptionsByClient.bind(store)
  store.subscriptionsByClient = async (client) => {
    const subs = await subscriptionsByClient(client)
    if (subs.length > 0 || !(await store.hasSession(client.id))) return subs
    const marker = { topic: '$culex/session', qos: 0 }
    sessionMarkers.add(marker)
    return [marker]
  }
  const refuseSessionMarker: SubscribeStep = (_client, sub) => !sessionMarkers.has(sub)

  // aedes deletes the QoS 2 record when PUBREL arrives; from then on the id may carry a new message.
  const incomingDelPacket = store.incomingDelPacket.bind(store)
  store.incomingDelPacket = async (client, packet) => {
    gate.released(client, packet.messageId)
    return await incomingDelPacket(client, packet)
  }

  // aedes takes a QoS 2 PUBLISH whose id has a record for a duplicate and answers PUBREC at once. A resend of a
  // message still being stored (on a new connection, say) would so be acknowledged for a message a failure can
  // still lose: it waits until the first copy is stored (a duplicate) or has failed (its record is gone: new).
  const incomingGetPacket = store.incomingGetPacket.bind(store)
  store.incomingGetPacket = (client, packet) => {
    const first = packet.messageId === undefined ? undefined : gate.storing(client.id, packet.messageId)
    return first === undefined ? incomingGetPacket(client, packet) : first.then(() => incomingGetPacket(client, packet))
  }

  return { granted, refuseSessionMarker }
}
