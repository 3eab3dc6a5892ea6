import type { Socket } from 'node:net'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import type { ConnectionGuard, ListenerName } from '../listeners/listener.js'
import { Admission } from './admission.js'
import type { LimitCounters } from './counters.js'
import { LogThrottle } from './log-throttle.js'

/**
 * Room for everything in a packet besides the payload: the topic, packet id and, in a CONNECT, the client id,
 * user name, password and will topic (each at most 65535 bytes) and their length prefixes.
 */
export const PACKET_OVERHEAD_BYTES = 4 * 65_535 + 64
const MQTT_MAX_REMAINING_LENGTH = 268_435_455

/** The listeners' side of the limits: admission at accept and the frame guard. */
export function createConnectionGuard (config: Config, log: Logger, counters: LimitCounters): ConnectionGuard {
  const l = config.listeners
  const admission = new Admission({
    maxConnections: config.limits.maxConnections,
    perListener: { mqtt: l.mqtt.maxConnections, mqtts: l.mqtts.maxConnections, ws: l.ws.maxConnections, wss: l.wss.maxConnections },
    connectionRatePerSecond: config.limits.connectionRatePerSecond
  })
  const throttle = new LogThrottle()
  const warn = (key: string, fields: Record<string, unknown>, msg: string): void => {
    const suppressed = throttle.take(key)
    if (suppressed !== undefined) log.warn({ ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, msg)
  }
  return {
    admit: (listener: ListenerName, socket: Socket) => {
      const remote = socket.remoteAddress ?? 'unknown'
      const admitted = admission.admit(listener, remote)
      if (admitted.ok) return admitted.release
      counters.connectionsRefused++
      warn(`${admitted.limit}:${remote}`, { listener, remote, limit: admitted.limit }, 'connection refused over limit')
      return undefined
    },
    maxPacketBytes: Math.min(config.limits.maxPayloadBytes + PACKET_OVERHEAD_BYTES, MQTT_MAX_REMAINING_LENGTH),
    refused: (listener, remote, violation) => {
      counters.oversizedPackets++
      const fields = violation.kind === 'too-large'
        ? { limit: 'limits.maxPayloadBytes', declaredBytes: violation.declared }
        : { limit: 'malformed remaining length' }
      warn(`frame:${remote ?? ''}`, { listener, remote, ...fields }, violation.kind === 'too-large' ? 'connection closed: packet too large' : 'connection closed: malformed packet')
    },
    handshakeTimeoutMs: config.mqtt.connectTimeoutMs
  }
}
