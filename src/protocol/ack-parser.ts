import type { Client } from 'aedes'

/** The parts of mqtt-packet's parser the fast path reads (node_modules/mqtt-packet/parser.js). */
interface MqttParser extends NodeJS.EventEmitter {
  parse: (buf: Buffer) => number
  /** Bytes held from an earlier read: a packet split across reads is in progress. */
  _list: { length: number }
  _stateCounter: number
  error: Error | null
}

/** The command of each fixed-header byte of a two-byte acknowledgement, with the flag bits MQTT 3.1.1 requires. */
const ACK_COMMANDS: ReadonlyMap<number, string> = new Map([[0x40, 'puback'], [0x50, 'pubrec'], [0x62, 'pubrel'], [0x70, 'pubcomp']])

/**
 * Parses reads that hold nothing but whole acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP) without mqtt-packet.
 *
 * A subscriber answers every QoS 1/2 message with one four-byte packet, so its reads are runs of those, and
 * mqtt-packet spent about 2 µs on each (a buffer list, a state machine, a dozen debug calls): a sixth of the
 * broker's CPU while a queue drains. Such a read is turned into the same packets mqtt-packet builds, emitted the
 * same way and in the same order, so aedes and every listener see no difference. Anything else (another packet, a
 * split packet, a packet left over from an earlier read, a parser in error) goes to mqtt-packet untouched.
 */
export function parseAcksFast (client: Client): void {
  const parser = (client as Client & { _parser: MqttParser })._parser
  const parse = parser.parse
  parser.parse = function parseAcks (this: MqttParser, buf: Buffer): number {
    if (this._list.length !== 0 || this._stateCounter !== 0 || this.error !== null || !onlyAcks(buf)) return parse.call(this, buf)
    for (let i = 0; i < buf.length; i += 4) {
      // the shape and key order of mqtt-packet's Packet, so the objects aedes handles keep one hidden class
      this.emit('packet', {
        cmd: ACK_COMMANDS.get(buf[i]),
        retain: false,
        qos: (buf[i] >> 1) & 3,
        dup: false,
        length: 2,
        topic: null,
        payload: null,
        messageId: (buf[i + 2] << 8) | buf[i + 3]
      })
    }
    return 0
  }
}

function onlyAcks (buf: Buffer): boolean {
  if (buf.length === 0 || buf.length % 4 !== 0) return false
  for (let i = 0; i < buf.length; i += 4) {
    if (buf[i + 1] !== 2 || !ACK_COMMANDS.has(buf[i])) return false
  }
  return true
}
