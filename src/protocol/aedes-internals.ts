import type { Aedes, Client, PublishPacket } from 'aedes'

/**
 * The parts of aedes 1.2 objects that are not in its typings but that Culex relies on (read in
 * node_modules/aedes/lib/client.js and aedes.js). Kept in one place so an aedes upgrade has one file to check.
 */
export type Deliver = (packet: DeliveryPacket, cb: () => void) => void

export interface DeliveryPacket extends PublishPacket {
  brokerId?: string | null
  brokerCounter?: number
}

export interface ClientInternals extends Client {
  subscriptions: Record<string, { qos: number }>
  deliver0: Deliver
  deliverQoS: Deliver
  /** brokerId → highest brokerCounter delivered; aedes drops anything not above it. */
  duplicates: Record<string, number>
  will?: PublishPacket | null
  _disconnected?: boolean
}

export type PublishFn = (packet: PublishPacket, client: Client | null | ((err?: Error) => void), done?: (err?: Error) => void) => void

export interface BrokerInternals extends Aedes {
  publish: PublishFn
  counter: number
  /** Connected clients by id. */
  clients: Record<string, Client>
}

export function internals (client: Client): ClientInternals {
  return client as ClientInternals
}
