import type { Duplex } from 'node:stream'

/**
 * [MQTT-3.1.2-2]: a CONNECT with a protocol level the server does not support gets CONNACK 0x01 and then the
 * connection is closed. mqtt-packet's parser rejects every level but 3, 4 and 5 before aedes sees the packet, so
 * aedes can only close the connection silently. This reads the level from the first bytes of the connection,
 * before the parser does, and answers itself.
 */
const CONNACK_UNACCEPTABLE_PROTOCOL = Buffer.from([0x20, 0x02, 0x00, 0x01])
const PARSED_LEVELS = new Set([3, 4, 5])
// A CONNECT's fixed header, protocol name and level fit well within this; past it the check gives up.
const MAX_HEADER_BYTES = 64

type Level = number | 'incomplete' | 'not-connect'

export function connectLevel (head: Buffer): Level {
  if (head.length === 0) return 'incomplete'
  if (head[0] !== 0x10) return 'not-connect'
  let offset = 1
  for (let i = 0; ; i++) {
    if (offset >= head.length) return 'incomplete'
    if (i === 4) return 'not-connect'
    if ((head[offset++] & 0x80) === 0) break
  }
  if (offset + 2 > head.length) return 'incomplete'
  const nameEnd = offset + 2 + head.readUInt16BE(offset)
  if (nameEnd >= head.length) return nameEnd >= MAX_HEADER_BYTES ? 'not-connect' : 'incomplete'
  return head[nameEnd]
}

export function answerUnsupportedLevel (stream: Duplex): void {
  // unbound: once the level is known this read() is put back as it was, not as a bound copy kept for good
  const read = stream.read
  let head = Buffer.alloc(0)
  stream.read = (size?: number): unknown => {
    const chunk: unknown = read.call(stream, size)
    if (!(chunk instanceof Uint8Array)) return chunk
    head = Buffer.concat([head, chunk])
    const level = connectLevel(head)
    if (level === 'incomplete' && head.length < MAX_HEADER_BYTES) return chunk
    stream.read = read
    if (typeof level !== 'number' || PARSED_LEVELS.has(level)) return chunk
    stream.end(CONNACK_UNACCEPTABLE_PROTOCOL)
    return null
  }
}
