/** The fixed-header byte of each acknowledgement (PUBREL with its required flags). */
const PUBREL_HEADER = 0x62
const ACK_HEADER: ReadonlyMap<string, number> = new Map([['puback', 0x40], ['pubrec', 0x50], ['pubrel', PUBREL_HEADER], ['pubcomp', 0x70]])

/** An acknowledgement as aedes hands it to mqtt-packet's writeToStream. */
export interface AckLike {
  cmd: string
  messageId?: number
  dup?: boolean
  reasonCode?: number
  properties?: unknown
}

/**
 * The four bytes of a PUBACK, PUBREC, PUBREL or PUBCOMP with a packet identifier and nothing else: what mqtt-packet
 * writes for it at MQTT 3.1 and 3.1.1 (a Remaining Length of 2), and what MQTT 5 allows for reason 0x00 without
 * properties (§3.4.2.1). Undefined for anything else (a PUBREL with DUP, a reason code, properties, another packet),
 * which mqtt-packet writes. mqtt-packet writes an acknowledgement in three pieces (header, length, packet id), each
 * through every wrapper of the connection's write, with a debug call for each: one per QoS 1 PUBLISH received.
 */
export function plainAckFrame (packet: AckLike): Buffer | undefined {
  const header = ACK_HEADER.get(packet.cmd)
  if (header === undefined || (packet.reasonCode !== undefined && packet.reasonCode !== 0) || packet.properties !== undefined || packet.dup === true) return undefined
  const id = packet.messageId
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffff) return undefined
  const frame = Buffer.allocUnsafe(4)
  frame[0] = header
  frame[1] = 2
  frame[2] = id >> 8
  frame[3] = id & 0xff
  return frame
}

/** Whether a plain acknowledgement frame is a PUBREL (which MQTT 5 sends without a reason check). */
export function isPubrelFrame (frame: Buffer): boolean {
  return frame[0] === PUBREL_HEADER
}
