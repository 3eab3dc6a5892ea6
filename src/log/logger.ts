import { pino, type Logger, type DestinationStream } from 'pino'

export type { Logger }

export type LogFormat = 'auto' | 'json' | 'pretty'

export interface LoggerOptions {
  level: string
  format: LogFormat
  /** Where lines go; stdout when absent. Tests pass a sink to read what was logged. */
  destination?: DestinationStream
}

/** Paths that must never reach a log line, wherever a packet or client object is logged. */
export const redactPaths = [
  'password',
  '*.password',
  'packet.password',
  'payload',
  '*.payload',
  'authorization',
  '*.authorization'
]

export function createLogger (opts: LoggerOptions): Logger {
  const pretty = opts.format === 'pretty' || (opts.format === 'auto' && opts.destination === undefined && process.stdout.isTTY === true)
  const base = {
    level: opts.level,
    base: { service: 'culex' },
    redact: { paths: redactPaths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime
  }
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } })
  }
  return opts.destination === undefined ? pino(base) : pino(base, opts.destination)
}
