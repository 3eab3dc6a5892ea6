import type { Client } from 'aedes'
import { internals } from './aedes-internals.js'

/**
 * Nothing a client sends after CONNECT is handled before its login has succeeded and CONNACK 0 is written.
 *
 * aedes 1.2 queues only the packets parsed from the same read as CONNECT, and pauses reading only once the
 * authenticate step starts: a packet completed by a later read (any PUBLISH over one read, about 64 KiB, or one sent
 * a moment after CONNECT) was handled while the login was still being decided, as an anonymous client, and was
 * acknowledged, delivered, retained or dead-lettered before a refusal. Its queue also holds 42 packets at most
 * (the client is dropped past that) and is emptied only after the stored queue has been replayed, behind packets read
 * later.
 *
 * So reading stops the moment CONNECT is parsed, and every packet parsed after it (the rest of that read) is held
 * here, from the parser's own 'packet' emission: aedes and every feature listening on the parser see none of it. On
 * CONNACK 0 they are emitted in the order they came, then what is read afterwards; on a refusal or a close they are
 * dropped unseen. Packets not yet read wait in the socket, so a client pipelining more than one read is slowed by
 * TCP, not refused. The held packets are bounded by `maxBytes`; past it the connection is closed.
 */
export interface ConnackGate {
  /** The CONNACK written to this client, with its return code. */
  connackSent: (returnCode: number) => void
}

export interface ConnackGateOptions {
  maxBytes: number
  /** Called once when the held packets pass maxBytes, just before the connection is closed. */
  onOverflow: (client: Client, heldBytes: number) => void
}

interface HeldPacket { cmd: string, length: number }

export function gateUntilConnack (client: Client, opts: ConnackGateOptions): ConnackGate {
  const c = internals(client)
  const parser = c._parser
  const emit = parser.emit
  let state: 'first' | 'holding' | 'releasing' | 'open' | 'dropped' = 'first'
  let held: HeldPacket[] = []
  let heldBytes = 0

  parser.emit = function gatedEmit (this: NodeJS.EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'packet' || state === 'open') return emit.call(this, event, ...args)
    if (state === 'dropped') return false
    const packet = args[0] as HeldPacket
    if (state === 'first') {
      // A first packet that is not CONNECT is aedes' to refuse; whatever follows it is never handled.
      state = 'holding'
      if (packet.cmd === 'connect') c.pause()
      return emit.call(this, event, ...args)
    }
    // MQTT 5 AUTH during the login is part of it (protocol/v5/enhanced-auth.ts), not held behind it
    if (packet.cmd === 'auth' && state === 'holding') return emit.call(this, event, ...args)
    held.push(packet)
    // Once CONNACK 0 is out, what is read before the held packets are through is aedes' to handle like any read.
    if (state === 'releasing') return true
    heldBytes += wireBytes(packet.length)
    if (heldBytes > opts.maxBytes) {
      state = 'dropped'
      held = []
      opts.onOverflow(client, heldBytes)
      client.conn.destroy()
    }
    return true
  }

  return {
    connackSent: (returnCode) => {
      if (state !== 'holding') return
      if (returnCode !== 0) {
        state = 'dropped'
        held = []
        return
      }
      // aedes marks the client connackSent right after announcing the CONNACK; only from then on does it handle a
      // packet at once rather than queue it.
      state = 'releasing'
      queueMicrotask(() => {
        if (state !== 'releasing') return
        // Packets parsed while these are being handled join the end of the list, so the order holds.
        for (let i = 0; i < held.length && !c.closed; i++) emit.call(parser, 'packet', held[i])
        held = []
        if (c.closed) {
          state = 'dropped'
          return
        }
        state = 'open'
        // From here on every packet goes straight through: the gate costs nothing on the hot path.
        parser.emit = emit
      })
    }
  }
}

/** The bytes a packet of this Remaining Length takes on the wire: fixed header byte, length bytes, the rest. */
function wireBytes (remaining: number): number {
  let lengthBytes = 1
  for (let n = remaining; n >= 0x80; n = Math.floor(n / 0x80)) lengthBytes++
  return 1 + lengthBytes + remaining
}
