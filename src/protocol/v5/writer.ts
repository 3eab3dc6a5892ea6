import mqtt from 'mqtt-packet'
import { isPubrelFrame, plainAckFrame } from '../ack-frames.js'
import { v5OfStream, type V5Connection } from './connection.js'
import { toV5, type AedesPacket } from './outgoing.js'
import { isPlainSuccess } from './refusals.js'

type WriteToStream = (packet: AedesPacket, stream: object, opts?: { protocolVersion?: number }) => boolean

const V5_OPTIONS = Object.freeze({ protocolVersion: 5 })
let installed = false

/**
 * Every packet aedes writes itself — CONNACK, SUBACK, UNSUBACK, the acknowledgements, PINGRESP — goes through one
 * call, `mqtt.writeToStream(packet, client.conn)` in aedes' lib/write.js, without a protocol version, so mqtt-packet
 * encodes it as MQTT 3.1.1. That call reads writeToStream from mqtt-packet's exports each time: wrapped here once
 * per process, a write to the stream of a v5 client is encoded as MQTT 5 (toV5), and every other write is passed
 * through untouched (a write that names its options, such as an MQTT client's, included), except a plain
 * acknowledgement to an MQTT 3.1/3.1.1 client, written as its four bytes at once (ack-frames.ts). aedes-internals.ts
 * checks at start that aedes still writes this way.
 */
export function encodeAedesWritesPerVersion (): void {
  if (installed) return
  installed = true
  const exports = mqtt as unknown as { writeToStream: WriteToStream }
  const writeToStream = exports.writeToStream as WriteToStream & { cacheNumbers: boolean }
  // By default mqtt-packet builds, at its first write, a Buffer for every 16-bit number (65,536 of them): 30 ms of
  // CPU and about 7 MB of heap, paid by the first client to connect after a start (the restart's first reconnect
  // waited for it). Culex writes PUBLISH, PUBREL and the plain acknowledgements itself, so what is left to mqtt-packet
  // writes a few numbers per CONNACK or SUBACK, each in a 2-byte slice of node's buffer pool without the cache.
  writeToStream.cacheNumbers = false
  exports.writeToStream = function writeToStreamPerVersion (packet, stream, opts) {
    if (opts !== undefined) return writeToStream(packet, stream, opts)
    const connection = v5OfStream(stream)
    if (connection === undefined) {
      const ack = plainAckFrame(packet)
      return ack === undefined ? writeToStream(packet, stream, opts) : (stream as { write: (chunk: Buffer) => boolean }).write(ack)
    }
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
  const frame = plainAckFrame(packet)
  if (frame === undefined) return undefined
  if (!isPubrelFrame(frame) && !isPlainSuccess(connection, packet.cmd, packet.messageId as number)) return undefined
  return frame
}
