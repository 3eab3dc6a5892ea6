import type { AddressInfo, Server, Socket } from 'node:net'
import { CulexError } from '../errors.js'

/**
 * Binds the server; once bound, its errors (an accept that failed, e.g. EMFILE when the process is out of file
 * descriptors) go to `onError` and it keeps listening, where an unhandled 'error' event would end the process.
 */
export async function bind (server: Server, name: string, host: string, port: number, onError?: (err: NodeJS.ErrnoException) => void): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    const onBindError = (err: NodeJS.ErrnoException): void => {
      const why = err.code === 'EADDRINUSE'
        ? 'the port is already in use'
        : err.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : err.code === 'EADDRNOTAVAIL' ? 'the address is not on this machine' : err.message
      reject(new CulexError('ERR_LISTENER_BIND', `listener ${name} cannot bind ${host}:${port}: ${why}`, { cause: err }))
    }
    server.once('error', onBindError)
    server.listen(port, host, () => {
      server.off('error', onBindError)
      server.on('error', err => onError?.(err))
      resolve()
    })
  })
  return server.address() as AddressInfo
}

/**
 * Keeps the open sockets of a server, TLS handshakes in progress included, and returns what stops it: no new
 * connections, and the open ones (also those that never became MQTT clients) destroyed.
 */
export function trackSockets (server: Server): () => Promise<void> {
  const sockets = new Set<Socket>()
  // one listener for every socket, not a closure each ('close' comes once)
  function forget (this: Socket): void { sockets.delete(this) }
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', forget)
  })
  return async () => {
    await new Promise<void>(resolve => {
      server.close(() => resolve())
      for (const s of sockets) s.destroy()
    })
  }
}
