import net from 'node:net'
import mqttPacket, { type IConnackPacket, type IConnectPacket, type Packet } from 'mqtt-packet'
import WebSocket from 'ws'
import type { Transport } from './clients.js'

/**
 * A byte-level MQTT client over TCP or WebSocket for conformance tests: it sends exactly the packets (or bytes) it is
 * given, never acknowledges anything on its own, and records every packet the broker sends and when the connection
 * closed. Misbehaving-client cases (bad packets, no PUBACK, resent QoS 2 PUBLISH, abrupt socket loss) need this.
 */
export interface RawClient {
  /** Every packet received, in order. */
  readonly received: Packet[]
  /** When each packet of `received` was parsed (Date.now()), at the same index. */
  readonly receivedAt: number[]
  /** Parse errors on what the broker sent (should stay empty). */
  readonly parseErrors: Error[]
  readonly isClosed: boolean
  /** Resolves when the connection has closed (either side). */
  readonly closed: Promise<void>
  /** Encodes the packet with mqtt-packet (protocol version `version`, default 4) and writes it as one frame. */
  send: (packet: Packet) => void
  /** Writes these bytes as they are (one WebSocket message over WebSocket). */
  sendRaw: (bytes: Buffer) => void
  /**
   * The next received packet not yet taken by an earlier `next`, that satisfies `match` (a command name or a
   * predicate); waits for it. Packets skipped over stay available to later calls.
   */
  next: <P extends Packet = Packet>(match?: string | ((p: Packet) => boolean), timeoutMs?: number) => Promise<P>
  /** Whether the connection closes within `timeoutMs`. */
  waitClosed: (timeoutMs?: number) => Promise<boolean>
  /** Sends CONNECT (defaults: MQTT 3.1.1, clean, keepalive 0) and waits for CONNACK. */
  connect: (opts: Partial<IConnectPacket> & { clientId: string }, timeoutMs?: number) => Promise<IConnackPacket>
  /** Sends DISCONNECT and waits for the broker to close. */
  disconnect: () => Promise<void>
  /** Drops the connection without DISCONNECT: a TCP reset (WebSocket: terminate the underlying socket). */
  destroy: () => void
}

export interface RawUrls { mqttUrl: string, wsUrl: string }

export async function openRaw (transport: Transport, urls: RawUrls, opts: { version?: 3 | 4 | 5 } = {}): Promise<RawClient> {
  const version = opts.version ?? 4
  const parser = mqttPacket.parser({ protocolVersion: version })
  const received: Packet[] = []
  const receivedAt: number[] = []
  const taken = new Set<number>()
  const parseErrors: Error[] = []
  const waiters = new Set<() => void>()
  let isClosed = false
  let resolveClosed!: () => void
  const closed = new Promise<void>(resolve => { resolveClosed = resolve })
  const onClose = (): void => {
    if (isClosed) return
    isClosed = true
    resolveClosed()
    for (const w of waiters) w()
  }
  parser.on('packet', (p: Packet) => {
    received.push(p)
    receivedAt.push(Date.now())
    for (const w of waiters) w()
  })
  parser.on('error', (err: Error) => parseErrors.push(err))

  let write: (bytes: Buffer) => void
  let destroy: () => void

  if (transport === 'tcp') {
    const url = new URL(urls.mqttUrl)
    const socket = net.connect({ host: url.hostname, port: Number(url.port) })
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => parser.parse(chunk))
    socket.on('error', () => { /* a reset by the broker is a close */ })
    socket.on('close', onClose)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    write = bytes => { if (!socket.destroyed) socket.write(bytes) }
    destroy = () => { socket.resetAndDestroy() }
  } else {
    const ws = new WebSocket(urls.wsUrl, 'mqtt')
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data: Buffer) => parser.parse(data))
    ws.on('error', () => { /* a reset by the broker is a close */ })
    ws.on('close', onClose)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    write = bytes => { if (ws.readyState === WebSocket.OPEN) ws.send(bytes) }
    destroy = () => { ws.terminate() }
  }

  const next = async <P extends Packet = Packet>(match?: string | ((p: Packet) => boolean), timeoutMs = 5000): Promise<P> => {
    const test = match === undefined ? () => true : typeof match === 'string' ? (p: Packet) => p.cmd === match : match
    const find = (): P | undefined => {
      for (let i = 0; i < received.length; i++) {
        if (!taken.has(i) && test(received[i])) {
          taken.add(i)
          return received[i] as P
        }
      }
      return undefined
    }
    const found = find()
    if (found !== undefined) return found
    return await new Promise<P>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${typeof match === 'string' ? match : 'a matching packet'}; received: ${received.map(p => p.cmd).join(', ') || 'nothing'}${isClosed ? ' (connection closed)' : ''}`))
      }, timeoutMs)
      function check (): void {
        const p = find()
        if (p !== undefined) {
          clearTimeout(timer)
          waiters.delete(check)
          resolve(p)
        } else if (isClosed) {
          clearTimeout(timer)
          waiters.delete(check)
          reject(new Error(`connection closed while waiting for ${typeof match === 'string' ? match : 'a matching packet'}; received: ${received.map(p => p.cmd).join(', ') || 'nothing'}`))
        }
      }
      waiters.add(check)
    })
  }

  const self: RawClient = {
    received,
    receivedAt,
    parseErrors,
    get isClosed () { return isClosed },
    closed,
    send: packet => write(mqttPacket.generate(packet, { protocolVersion: version })),
    sendRaw: bytes => write(bytes),
    next,
    waitClosed: async (timeoutMs = 2000) => {
      if (isClosed) return true
      let timer: NodeJS.Timeout | undefined
      const timedOut = new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(false), timeoutMs) })
      const result = await Promise.race([closed.then(() => true), timedOut])
      clearTimeout(timer)
      return result
    },
    connect: async (connectOpts, timeoutMs = 5000) => {
      self.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, ...connectOpts })
      return await next<IConnackPacket>('connack', timeoutMs)
    },
    disconnect: async () => {
      self.send({ cmd: 'disconnect' })
      await self.waitClosed(3000)
    },
    destroy
  }
  return self
}

/** Closes every raw client given (abruptly); for afterEach clean-up. */
export function destroyAll (clients: Iterable<RawClient>): void {
  for (const c of clients) if (!c.isClosed) c.destroy()
}

export interface ConnectBytesOptions {
  protocolName?: string
  protocolLevel?: number
  /** The whole connect-flags byte; when given, cleanSession/will fields are ignored. */
  flags?: number
  cleanSession?: boolean
  keepalive?: number
  clientId: string
  will?: { topic: string, payload: string, qos: number, retain: boolean }
  /** Level 5 only: the encoded CONNECT properties (without their length); none when absent. */
  properties?: Buffer
}

/**
 * Encodes a CONNECT by hand, for the cases mqtt-packet refuses to generate (unknown protocol levels, a zero-length
 * client id with CleanSession 0, reserved flag bits). Level 5 gets empty CONNECT and will property lists.
 */
export function connectBytes (o: ConnectBytesOptions): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s, 'utf8')
    const len = Buffer.alloc(2)
    len.writeUInt16BE(b.length)
    return Buffer.concat([len, b])
  }
  let flags = o.flags
  if (flags === undefined) {
    flags = o.cleanSession === false ? 0 : 0x02
    if (o.will !== undefined) flags |= 0x04 | (o.will.qos << 3) | (o.will.retain ? 0x20 : 0)
  }
  const keepalive = Buffer.alloc(2)
  keepalive.writeUInt16BE(o.keepalive ?? 0)
  // MQTT 5 has a property length after the keepalive and before the will topic: none (0) for the will
  const noProperties = o.protocolLevel === 5 ? [Buffer.from([0])] : []
  const properties = o.protocolLevel === 5 ? [remainingLength(o.properties?.length ?? 0), o.properties ?? Buffer.alloc(0)] : []
  const parts = [str(o.protocolName ?? 'MQTT'), Buffer.from([o.protocolLevel ?? 4, flags]), keepalive, ...properties, str(o.clientId)]
  if (o.will !== undefined) parts.push(...noProperties, str(o.will.topic), str(o.will.payload))
  const body = Buffer.concat(parts)
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body])
}

export function remainingLength (n: number): Buffer {
  const bytes: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    bytes.push(byte)
  } while (n > 0)
  return Buffer.from(bytes)
}
