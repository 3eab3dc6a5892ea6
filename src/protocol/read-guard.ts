import type { Client } from 'aedes'
import type { Logger } from '../log/logger.js'
import { clientLogger } from '../log/client-log.js'
import { internals } from './aedes-internals.js'

/**
 * Closes one client after a bug in the code that handles it (a throw on its read path, or after its publish was
 * answered), with one log line. aedes calls the parser from a socket 'readable' listener and runs most packet
 * handling inside that call, so such a throw would otherwise be an uncaught exception that ends the process.
 */
export function closeAfterBug (log: Logger, client: Client | null, err: unknown, where: string): void {
  const clientLog = client === null || client.id === null ? log : clientLogger(log, client)
  clientLog.error({ err, where }, 'internal error, closing the connection')
  if (client !== null && !client.closed) client.close()
}

/** Wraps the client's parse so that whatever it throws (parsing, or a packet handler it runs) closes only that client. */
export function guardReads (client: Client, onThrow: (client: Client, err: unknown) => void): void {
  const parser = internals(client)._parser
  const parse = parser.parse
  let failed = false
  parser.parse = function guardedParse (this: typeof parser, buf: Buffer): number {
    if (failed) return 0
    try {
      return parse.call(this, buf)
    } catch (err) {
      // the parser's state is unknown after a throw: nothing more is read from this connection
      failed = true
      onThrow(client, err)
      return 0
    }
  }
}
