import mqtt from 'mqtt-packet'
import { v5OfStream, type V5Connection } from './connection.js'
import { toV5, type AedesPacket } from './outgoing.js'
import { isPlainSuccess } from './refusals.js'

type WriteToStream = (packet: AedesPacket, stream: object, opts?: { protocolVersion?: number }) => boolean

const V5_OPTIONS = Object.freeze({ protocolVersion: 5 })
let installed = false

/** The fixed-header byte of each acknowledgement (PUBREL with its required flags). */
const PUBREL_HEADER = 0x62
const ACK_HEADER: ReadonlyMap<string, number> = new Map([['puback', 0x40], ['pubrec', 0x50], ['pubrel', PUBREL_HEADER], ['pubcomp', 0x70]])

/**
 * Every packet aedes writes itself — CONNACK, SUBACK, UNSUBACK, the acknowledgements, PINGRESP — goes through one
 * call, `mqtt.writeToStream(packet, client.conn)` in aedes' lib/write.js, without a protocol version, so mqtt-packet
 * encodes it as MQTT 3.1.1. That call reads writeToStream from mqtt-packet's exports each time: wrapped here once
 * per process, a write to the stream of a v5 client is encoded as MQTT 5 (toV5), and every other write is passed
 * through untouched (a write that names its options, such as an MQTT client's, included). aedes-internals.ts
 * checks at start that aedes still writes this way.
 */
export function encodeAedesWritesPerVersion (): void {
  if (installed) return
  installed = true
  const exports = mqtt as unknown as { writeToStream: WriteToStream }
  const writeToStream = exports.writeToStream
  exports.writeToStream = function writeToStreamPerVersion (packet, stream, opts) {
    const connection = opts === undefined ? v5OfStream(stream) : undefined
    if (connection === undefined) return writeToStream(packet, stream, opts)
    const ack = successfulAck(packet, connection)
    if (ack !== undefined) return (stream as { write: (chunk: Buffer) => boolean }).write(ack)
    const v5 = toV5(packet, connection)
    connection.server.reasonCodesSent.count(v5)
    return writeToStream(v5, stream, V5_OPTIONS)
  }
}

/**
 * The bytes of an acknowledgement with reason 0x00 and no properties, which MQTT 5 sends as MQTT 3.1.1 does, with
 * a Remaining Length of 2 (§3.4.2.1; what mqtt-packet writes for it too): written at once, without the MQTT 5 copy
 * of the packet and mqtt-packet's four writes. Undefined for any other packet, and for one refusals.ts has
 * something to say about (a refused or unmatched publish, a QoS 2 flow a refusing PUBREC ended): toV5 gives those
 * their reason code, and the reason-code count sees them. A success is not counted (reason-counts.ts), so nothing
 * this path writes goes uncounted.
 */
function successfulAck (packet: AedesPacket, connection: V5Connection): Buffer | undefined {
  const header = ACK_HEADER.get(packet.cmd)
  if (header === undefined || (packet.reasonCode !== undefined && packet.reasonCode !== 0) || packet.properties !== undefined || packet.dup === true) return undefined
  const id = packet.messageId
  if (typeof id !== 'number' || id < 0 || id > 0xffff) return undefined
  if (header !== PUBREL_HEADER && !isPlainSuccess(connection, packet.cmd, id)) return undefined
  return Buffer.from([header, 2, id >> 8, id & 0xff])
}
