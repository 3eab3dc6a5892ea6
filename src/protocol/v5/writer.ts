import mqtt from 'mqtt-packet'
import { v5OfStream } from './connection.js'
import { toV5, type AedesPacket } from './outgoing.js'

type WriteToStream = (packet: AedesPacket, stream: object, opts?: { protocolVersion?: number }) => boolean

const V5_OPTIONS = Object.freeze({ protocolVersion: 5 })
let installed = false

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
    const v5 = toV5(packet, connection)
    connection.server.reasonCodesSent.count(v5)
    return writeToStream(v5, stream, V5_OPTIONS)
  }
}
