import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import type { Aedes, Client, PublishPacket } from 'aedes'
import { CulexError } from '../errors.js'

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
  _parser: NodeJS.EventEmitter & { settings: { protocolVersion?: number } }
  /**
   * Stops reading from the connection (aedes' read loop in lib/client.js checks the flag on every 'readable'); aedes
   * calls it itself when its authenticate step starts and calls resume() right after CONNACK 0 is written
   * (lib/handlers/connect.js emptyQueue). A refused client is never resumed.
   */
  pause: () => void
  /** Calls back once the connection's socket drained, or when mqtt.drainTimeoutMs or a close ends the wait. */
  waitForDrain: (callback: () => void) => void
  /** Set once the connection failed; aedes' write() then stops waiting for 'drain'. */
  errored?: boolean
  broker: BrokerInternals
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
  mq: { emit: (packet: DeliveryPacket, done?: (err?: Error | null) => void) => void }
}

export function internals (client: Client): ClientInternals {
  return client as ClientInternals
}

/**
 * MQTT 5 encoding of what aedes writes (protocol/v5/writer.ts) wraps mqtt-packet's writeToStream, which aedes 1.2
 * calls as `mqtt.writeToStream(packet, client.conn)` in lib/write.js for every packet it writes. That holds only if
 * aedes loads the same mqtt-packet as Culex and still writes that way: checked when the broker starts, so an aedes
 * upgrade that changes either stops the start instead of sending MQTT 3.1.1 packets to MQTT 5 clients.
 */
export function assertAedesWritePath (): void {
  const require = createRequire(import.meta.url)
  const aedesMain = require.resolve('aedes')
  const ours = require.resolve('mqtt-packet')
  const theirs = createRequire(aedesMain).resolve('mqtt-packet')
  const write = readFileSync(path.join(path.dirname(aedesMain), 'lib', 'write.js'), 'utf8')
  if (ours !== theirs || !write.includes('mqtt.writeToStream(packet, client.conn)')) {
    throw new CulexError('ERR_ENGINE_MISMATCH', `aedes no longer writes its packets through Culex's mqtt-packet (${theirs}, lib/write.js): MQTT 5 clients would get MQTT 3.1.1 packets`)
  }
}
