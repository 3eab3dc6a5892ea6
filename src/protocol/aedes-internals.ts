import { createRequire } from 'node:module'
import type { Aedes, Client, PublishPacket } from 'aedes'

/**
 * The parts of aedes 1.2 objects that are not in its typings but that Culex relies on (read in
 * node_modules/aedes/lib/client.js and aedes.js). Kept in one place so an aedes upgrade has one file to check.
 */
export type Deliver = (packet: DeliveryPacket, cb: () => void) => void

export interface DeliveryPacket extends PublishPacket {
  brokerId?: string | null
  brokerCounter?: number
  /** The publisher's id, when the PUBLISH it came from carried one (aedes-packet copies it; Culex sets it for v5). */
  clientId?: string
}

export interface ClientInternals extends Client {
  /**
   * Filter → its Subscription; `func` is the deliver function aedes registered for it with broker.subscribe, `nl` the
   * MQTT 5 No Local option (undefined for MQTT 3.1.1).
   */
  subscriptions: Record<string, { qos: number, func?: unknown, nl?: boolean }>
  deliver0: Deliver
  deliverQoS: Deliver
  /** brokerId → highest brokerCounter delivered; aedes drops anything not above it. */
  duplicates: Record<string, number>
  will?: PublishPacket | null
  _disconnected?: boolean
  /**
   * Stops the end-of-stream watch aedes set on the connection (`finished(conn, close)`); aedes calls it in close().
   * That watch and the connection's 'end' listener call close as bound when the client was created ('bound close'),
   * not the client's close as it is later: will-delay re-registers both (closeThroughInstance).
   */
  _eos: () => void
  /**
   * Next packet identifier aedes gives an outgoing QoS 1/2 PUBLISH (1..65535, wrapping, starting at random); a packet
   * handed to deliverQoS with its own messageId keeps it (lib/qos-packet.js). Culex's allocator (packet-ids.ts) uses
   * it as its cursor and skips the ids still held; nothing takes an id from it unchecked.
   */
  _nextId: number
  /**
   * The mqtt-packet parser of the connection: 'packet' is emitted for every packet read, before aedes handles it
   * (a prepended listener sees PUBACK/PUBREC/PUBCOMP of clean sessions too; aedes emits 'ack' only for persistent
   * ones). aedes removes every 'packet' listener when the client closes. aedes' own listener (enqueue in
   * lib/client.js) handles a packet at once when it is the first of a read or once the client is marked connackSent,
   * which aedes does right after emitting the broker's 'connackSent' event; other packets wait in a queue of
   * `queueLimit` (42) that is emptied once the connect handling has finished.
   * `settings` is what the parser reads the protocol level from: once it has parsed a CONNECT, that CONNECT packet
   * itself (mqtt-packet parser.js), so every later packet is parsed at the CONNECT's level.
   */
  _parser: MqttParser
  /**
   * Stops reading from the connection (aedes' read loop in lib/client.js checks the flag on every 'readable'); aedes
   * calls it itself when its authenticate step starts and calls resume() right after CONNACK 0 is written
   * (lib/handlers/connect.js emptyQueue). A refused client is never resumed.
   */
  pause: () => void
  /** Reads again (what aedes does after CONNACK 0); MQTT 5 enhanced authentication reads AUTH during the login. */
  resume: () => void
  /** Calls back once the connection's socket drained, or when mqtt.drainTimeoutMs or a close ends the wait. */
  waitForDrain: (callback: () => void) => void
  /** Set once the connection failed; aedes' write() then stops waiting for 'drain'. */
  errored?: boolean
  /** Set right after CONNACK 0 is written ('connackSent' event, lib/handlers/connect.js). */
  connackSent: boolean
  /**
   * Packet ids of the client's QoS 2 PUBLISHes aedes has taken and not seen the PUBREL of (maxInflightInbound counts
   * them); an id leaves it when aedes deletes the QoS 2 record at PUBREL. The MQTT 5 layer removes one whose flow a
   * refusing PUBREC ended.
   */
  _inboundInflight: Set<number>
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
  /**
   * What the parser reads the protocol level from: once it has parsed a CONNECT, that CONNECT packet itself
   * (mqtt-packet parser.js), so every later packet is parsed at the CONNECT's level.
   */
  settings: { protocolVersion?: number }
}

export type PublishFn = (packet: PublishPacket, client: Client | null | ((err?: Error) => void), done?: (err?: Error) => void) => void

export interface BrokerInternals extends Aedes {
  publish: PublishFn
  counter: number
  /** Connected clients by id. */
  clients: Record<string, Client>
  /**
   * Registers a client whose CONNECT succeeded; a connected client with the same id is closed first, and the new
   * one registered once it is (the take-over of [MQTT-3.1.4-2]). Called once per connection, from connect.js.
   */
  registerClient: (client: Client) => void
  /**
   * aedes' mqemitter. Every publish, whatever its QoS, reaches the live subscribers through one `mq.emit` (emitPacket
   * in aedes.js), with the aedes-packet (brokerId, brokerCounter set); its callback runs once every listener is done,
   * and a QoS 1/2 publisher is acknowledged only after that.
   */
  mq: MqEmitter
}

/** A listener of aedes' mqemitter: called with each matching message, calls back once it has handled it. */
export type Notify = (packet: DeliveryPacket, cb: () => void) => void

/**
 * aedes' mqemitter (mqemitter 7). `on` and `removeListener` are how every subscription reaches it (aedes'
 * broker.subscribe/unsubscribe, and shared groups' dispatchers); the cluster wraps them to keep each node's filters.
 */
export interface MqEmitter {
  emit: (packet: DeliveryPacket, done?: (err?: Error | null) => void) => void
  on: (topic: string, notify: Notify, done?: () => void) => MqEmitter
  removeListener: (topic: string, notify: Notify, done?: () => void) => MqEmitter
  /**
   * Its Qlobber (qlobber 8): the listeners by filter. mqemitter reaches it only through add (on), remove
   * (removeListener, removeAllListeners) and match (every emit); protocol/match-cache.ts wraps the three and clear.
   */
  _matcher: MqMatcher
}

export interface MqMatcher {
  match: (topic: string) => Notify[]
  add: (filter: string, notify: Notify) => unknown
  remove: (filter: string, notify?: Notify) => unknown
  clear: () => unknown
}

export function internals (client: Client): ClientInternals {
  return client as ClientInternals
}

// bl as mqtt-packet resolves it
const BufferList = (createRequire(createRequire(createRequire(import.meta.url).resolve('aedes')).resolve('mqtt-packet'))('bl') as { BufferList: new () => MqttParser['_list'] }).BufferList

/**
 * An empty buffer list of the kind mqtt-packet's parser keeps a split packet in, without the stream mqtt-packet
 * wraps it in (bl() is a readable-stream Duplex, with its two states and listeners: about 1 KB per connection, none
 * of which the parser uses; it only appends, reads and consumes).
 */
export function newBufferList (): MqttParser['_list'] {
  return new BufferList()
}
