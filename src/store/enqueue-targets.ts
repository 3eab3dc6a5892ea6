/** A subscription aedes hands to outgoingEnqueueCombi: a client and the QoS its filter was granted. */
export interface EnqueueTarget {
  clientId: string
  qos?: number
  rap?: boolean
}

export interface ClientTarget {
  /** Highest QoS granted by the client's matching filters. */
  cap: number
  /** Retain-as-published on any of them. */
  rap: boolean
}

/**
 * aedes passes one target per (client, matching filter); the queue holds one entry per client, at the highest QoS
 * its filters granted. A bare { clientId } (aedes' Client#publish) carries no granted QoS and caps nothing.
 */
export function targetsByClient (targets: readonly EnqueueTarget[]): Map<string, ClientTarget> {
  const perClient = new Map<string, ClientTarget>()
  for (const target of targets) {
    if (typeof target?.clientId !== 'string') continue
    const cap = typeof target.qos === 'number' ? target.qos : 2
    const seen = perClient.get(target.clientId)
    if (seen === undefined) {
      perClient.set(target.clientId, { cap, rap: target.rap === true })
    } else {
      seen.cap = Math.max(seen.cap, cap)
      seen.rap ||= target.rap === true
    }
  }
  return perClient
}
