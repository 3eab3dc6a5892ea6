import type { Socket } from 'node:net'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import type { ConnectionGuard, ListenerName } from '../listeners/listener.js'
import { Admission } from './admission.js'
import type { LimitCounters } from './counters.js'
import { LogThrottle } from './log-throttle.js'
import { intoReserve, openFilesLimit, reservedFds } from './open-files.js'

/**
 * Room for everything in a packet besides the payload: the topic, packet id and, in a CONNECT, the client id,
 * user name, password and will topic (each at most 65535 bytes) and their length prefixes.
 */
export const PACKET_OVERHEAD_BYTES = 4 * 65_535 + 64
const MQTT_MAX_REMAINING_LENGTH = 268_435_455

/** Accept errors and connections refused for want of file descriptors, by listener and error code (EMFILE, ...). */
export type AcceptErrors = Map<ListenerName, Map<string, number>>

/** The listeners' side of the limits: admission at accept and the frame guard. */
export function createConnectionGuard (config: Config, log: Logger, counters: LimitCounters): ConnectionGuard & { acceptErrors: AcceptErrors } {
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
  const openFiles = openFilesLimit()
  const reserve = openFiles === undefined ? 0 : reservedFds(openFiles)
  const acceptErrors: AcceptErrors = new Map()
  const countAcceptError = (listener: ListenerName, code: string): void => {
    const byCode = acceptErrors.get(listener) ?? new Map<string, number>()
    acceptErrors.set(listener, byCode.set(code, (byCode.get(code) ?? 0) + 1))
  }
  return {
    acceptErrors,
    admit: (listener: ListenerName, socket: Socket) => {
      const remote = socket.remoteAddress ?? 'unknown'
      if (openFiles !== undefined && intoReserve(socket, openFiles, reserve)) {
        countAcceptError(listener, 'EMFILE')
        warn('EMFILE', { listener, remote, openFilesLimit: openFiles, reservedFds: reserve, code: 'EMFILE' },
          'out of file descriptors: connection refused (raise ulimit -n, see docs/operations.md)')
        return undefined
      }
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
    acceptFailed: (listener, err) => {
      const code = err.code ?? 'unknown'
      countAcceptError(listener, code)
      warn(`accept:${code}`, { listener, code, err: err.message }, code === 'EMFILE' || code === 'ENFILE'
        ? 'out of file descriptors: cannot accept connections (raise ulimit -n, see docs/operations.md)'
        : 'cannot accept connections')
    },
    handshakeTimeoutMs: config.mqtt.connectTimeoutMs
  }
}
