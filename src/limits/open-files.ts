import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'

/**
 * The soft open-files limit of this process (`ulimit -n`), from /proc/self/limits; undefined where the system does
 * not say (no /proc) or sets no limit.
 */
export function openFilesLimit (limitsText?: string): number | undefined {
  let text = limitsText
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8')
    } catch {
      return undefined
    }
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1]
  const n = soft === undefined ? NaN : Number(soft)
  return Number.isInteger(n) && n > 0 ? n : undefined
}

/**
 * Descriptors kept free for everything that is not a client connection: the store's table files, log files, the
 * admin API, a TLS handshake's temporary files. Without them, the store could fail its writes once clients hold
 * every descriptor.
 */
export function reservedFds (limit: number): number {
  return Math.max(32, Math.ceil(limit / 100))
}

/**
 * The kernel gives a new socket the lowest free descriptor, so a new socket numbered at or above `limit - reserve`
 * means every descriptor below that is taken: only the reserve is left. Numbered below it, there was room.
 */
export function intoReserve (socket: Socket, limit: number, reserve: number): boolean {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd
  return typeof fd === 'number' && fd >= limit - reserve
}
