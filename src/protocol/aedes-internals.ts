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
  /** Filter → its Subscription; `func` is the deliver function aedes registered for it with broker.subscribe. */
  subscriptions: Record<string, { qos: number, func?: unknown }>
  deliver0: Deliver
  deliverQoS: Deliver
  /** brokerId → highest brokerCounter delivered; aedes drops anything not above it. */
  duplicates: Record<string, number>
  will?: PublishPacket | null
  _disconnected?: boolean
  /**
   * Next packet identifier aedes gives an outgoing QoS 1/2 PUBLISH (1..65535, wrapping); a packet handed to
   * deliverQoS with its own messageId keeps it (lib/qos-packet.js). Shared subscriptions take ids from here.
   */
  _nextId: number
  /**
   * The mqtt-packet parser of the connection: 'packet' is emitted for every packet read, before aedes handles it
   * (a prepended listener sees PUBACK/PUBREC/PUBCOMP of clean sessions too; aedes emits 'ack' only for persistent
   * ones). aedes removes every 'packet' listener when the client closes.
   */
  _parser: MqttParser
  /** Calls back once the connection's socket drained, or when mqtt.drainTimeoutMs or a close ends the wait. */
  waitForDrain: (callback: () => void) => void
  /** Set once the connection failed; aedes' write() then stops waiting for 'drain'. */
  errored?: boolean
  broker: BrokerInternals
}

/** The parts of mqtt-packet's parser (node_modules/mqtt-packet/parser.js) Culex reads or wraps. */
export interface MqttParser extends NodeJS.EventEmitter {
  parse: (buf: Buffer) => number
  /** Bytes held from an earlier read: a packet split across reads is in progress. */
  _list: { length: number, slice: (start: number, end: number) => Buffer }
  _stateCounter: number
  error: Error | null
  /** The packet being parsed; the object emitted with 'packet'. */
  packet: object
  /** Offset of the next field of the packet being parsed, in _list. */
  _pos: number
  /** Reads one length-prefixed string at _pos (decoded as UTF-8, invalid bytes as U+FFFD), or null. */
  _parseString: () => string | null
}

export type PublishFn = (packet: PublishPacket, client: Client | null | ((err?: Error) => void), done?: (err?: Error) => void) => void

export interface BrokerInternals extends Aedes {
  publish: PublishFn
  counter: number
  /** Connected clients by id. */
  clients: Record<string, Client>
  /**
   * aedes' mqemitter. Every publish, whatever its QoS, reaches the live subscribers through one `mq.emit` (emitPacket
   * in aedes.js), with the aedes-packet (brokerId, brokerCounter set); its callback runs once every listener is done,
   * and a QoS 1/2 publisher is acknowledged only after that.
   */
  mq: { emit: (packet: DeliveryPacket, done?: (err?: Error | null) => void) => void }
}

export function internals (client: Client): ClientInternals {
  return client as ClientInternals
}
