/** A subscription aedes hands to outgoingEnqueueCombi: a client and the QoS its filter was granted. */
export interface EnqueueTarget {
  clientId: string
  qos?: number
  rap?: boolean
}

export interface ClientTarget {
  clientId: string
  /** Highest QoS granted by the client's matching filters. */
  cap: number
  /** Retain-as-published on any of them. */
  rap: boolean
}

function targetOf (target: EnqueueTarget): ClientTarget {
  return { clientId: target.clientId, cap: typeof target.qos === 'number' ? target.qos : 2, rap: target.rap === true }
}

/**
 * aedes passes one target per (client, matching filter); the queue holds one entry per client, at the highest QoS
 * its filters granted. A bare { clientId } (aedes' Client#publish) carries no granted QoS and caps nothing.
 */
export function targetsByClient (targets: readonly EnqueueTarget[]): ClientTarget[] {
  // One target is the common case (one persistent subscriber per message): no map needed to merge.
  if (targets.length === 1) return typeof targets[0]?.clientId === 'string' ? [targetOf(targets[0])] : []
  const perClient = new Map<string, ClientTarget>()
  for (const target of targets) {
    if (typeof target?.clientId !== 'string') continue
    const seen = perClient.get(target.clientId)
    if (seen === undefined) {
      perClient.set(target.clientId, targetOf(target))
    } else {
      seen.cap = Math.max(seen.cap, typeof target.qos === 'number' ? target.qos : 2)
      seen.rap ||= target.rap === true
    }
  }
  return [...perClient.values()]
}
