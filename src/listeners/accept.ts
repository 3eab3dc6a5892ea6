import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { tagConnection, type ConnectionInfo } from './connection-info.js'
import { guardFrames } from './frame-guard.js'
import { batchWrites } from './write-batch.js'
import type { ConnectionGuard, ListenerName } from './listener.js'

/** At accept, before TLS or HTTP: asks the guard, closes a refused socket at once; false when it was refused. */
export function admitSocket (guard: ConnectionGuard | undefined, listener: ListenerName, socket: Socket): boolean {
  if (guard === undefined) return true
  const release = guard.admit(listener, socket)
  if (release === undefined) {
    socket.destroy()
    return false
  }
  // 'close' comes once; on() spares the wrapper once() would make for every connection
  socket.on('close', release)
  return true
}

/**
 * Just before the stream goes to aedes: records where it came from, puts the frame guard on it and batches its
 * writes per event-loop turn (write-batch.ts).
 */
export function prepareStream (guard: ConnectionGuard | undefined, stream: Duplex, info: ConnectionInfo): void {
  tagConnection(stream, info)
  batchWrites(stream)
  if (guard !== undefined && guard.maxPacketBytes > 0) {
    guardFrames(stream, guard.maxPacketBytes, v => {
      guard.refused(info.listener, info.remoteAddress, v)
      guard.farewell?.(stream, v)
    })
  }
}
