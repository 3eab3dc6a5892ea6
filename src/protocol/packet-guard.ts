import type { Client } from 'aedes'

/**
 * Checks every parsed packet before aedes handles it, for the protocol violations that mqtt-packet parses without
 * complaint and aedes acts on. A violating packet has its command replaced, so aedes' dispatcher closes the
 * connection without answering it, as the specification requires [MQTT-4.8.0-1].
 */
interface ParsedPacket {
  cmd: string
  topic?: string
  qos?: number
  dup?: boolean
  subscriptions?: Array<{ topic: string, qos: number }>
  unsubscriptions?: string[]
  will?: { topic: string, qos: number } | null
}

interface ParserInternals { _parser: NodeJS.EventEmitter }

const NUL = '\u0000'

export function violation (packet: ParsedPacket): string | undefined {
  switch (packet.cmd) {
    case 'connect':
      if (packet.will != null) {
        // [MQTT-3.1.2-14]
        if (packet.will.qos > 2) return 'will QoS 3'
        if (packet.will.topic.includes(NUL) || /[+#]/.test(packet.will.topic)) return 'invalid will topic'
      }
      return undefined
    case 'publish':
      // [MQTT-4.7.3-2], [MQTT-1.5.3-2]
      return packet.topic?.includes(NUL) === true ? 'U+0000 in a topic name' : undefined
    case 'subscribe':
      // [MQTT-3.8.3-3]
      if (packet.subscriptions === undefined || packet.subscriptions.length === 0) return 'SUBSCRIBE without topic filters'
      return packet.subscriptions.some(s => s.topic.includes(NUL)) ? 'U+0000 in a topic filter' : undefined
    case 'unsubscribe':
      // [MQTT-3.10.3-2]
      if (packet.unsubscriptions === undefined || packet.unsubscriptions.length === 0) return 'UNSUBSCRIBE without topic filters'
      return packet.unsubscriptions.some(f => f.includes(NUL)) ? 'U+0000 in a topic filter' : undefined
    default:
      return undefined
  }
}

export function guardPackets (client: Client, onViolation: (client: Client, reason: string) => void): void {
  (client as Client & ParserInternals)._parser.prependListener('packet', (packet: ParsedPacket) => {
    const reason = violation(packet)
    if (reason !== undefined) {
      onViolation(client, reason)
      packet.cmd = 'protocol-violation'
      return
    }
    // The DUP flag belongs to one hop: subscribers get DUP=0 unless Culex itself resends [MQTT-3.3.1-3].
    if (packet.cmd === 'publish') packet.dup = false
  })
}
