// Minimal MQTT 3.1.1 and MQTT 5 client for load generation: packets are built once with mqtt-packet's generate and
// then copied as Buffers; incoming packets are split by a small hand parser that understands only what the benchmark
// receives (CONNACK, SUBACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, PINGRESP). The goal is a generator that
// costs far less CPU per message than the broker under test. At MQTT 5 (`protocolVersion: 5`) its acknowledgements
// are the two-byte form MQTT 5 allows for reason 0x00 without properties (§3.4.2.1), the same bytes as 3.1.1.
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import mqttPacket from 'mqtt-packet'

const { generate } = mqttPacket

export const PUBLISH = 3
export const PUBACK = 4
export const PUBREC = 5
export const PUBREL = 6
export const PUBCOMP = 7
export const SUBACK = 9
export const CONNACK = 2

export const DISCONNECT_PACKET = generate({ cmd: 'disconnect' })

/**
 * MQTT 5: a persistent session (clean=false) asks for a Session Expiry Interval of a day, so that it outlives the
 * connection as a 3.1.1 clean=false session does; a clean one ends with the connection (interval 0).
 */
export function connectPacket ({ clientId, clean = true, keepalive = 0, protocolVersion = 4 }) {
  if (protocolVersion !== 5) return generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean, clientId, keepalive })
  const properties = clean ? undefined : { sessionExpiryInterval: 86400 }
  return generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean, clientId, keepalive, properties }, { protocolVersion })
}

export function subscribePacket (messageId, subscriptions, protocolVersion = 4) {
  return generate({ cmd: 'subscribe', messageId, subscriptions }, { protocolVersion })
}

/**
 * Payload layout (at least 14 bytes; the rest is padding):
 *   0..1  publisher index (u16)
 *   2..5  sequence number (u32)
 *   6..13 send time, performance.now() in ms (f64)
 */
export const PAYLOAD_MIN = 14

/**
 * A pre-encoded PUBLISH: `write(buf, offset, msgId, seq, t)` fills in the parts that change per message, so a
 * batch of messages is one Buffer.allocUnsafe plus a copy and three integer writes per message.
 */
export class PublishTemplate {
  /** `protocolVersion` 5: an MQTT 5 PUBLISH, with `properties` (mqtt-packet's form) or an empty property block. */
  constructor ({ topic, qos, payloadSize = 64, retain = false, pubIndex = 0, protocolVersion = 4, properties }) {
    if (payloadSize < PAYLOAD_MIN) throw new Error(`payload must be at least ${PAYLOAD_MIN} bytes`)
    const payload = Buffer.alloc(payloadSize, 0x61)
    payload.writeUInt16BE(pubIndex, 0)
    const v5 = protocolVersion === 5
    const buf = generate({ cmd: 'publish', topic, payload, qos, retain, dup: false, messageId: qos > 0 ? 1 : undefined, properties: v5 ? properties : undefined }, { protocolVersion })
    // the packet id comes right after the topic (before an MQTT 5 property block)
    let topicAt = 1
    while (buf[topicAt] & 128) topicAt++
    const idOffset = qos > 0 ? topicAt + 3 + Buffer.byteLength(topic) : -1
    this.buf = buf
    this.length = buf.length
    this.qos = qos
    this.payloadOffset = buf.length - payloadSize
    this.idOffset = idOffset
  }

  write (target, offset, msgId, seq, t) {
    this.buf.copy(target, offset)
    if (this.idOffset >= 0) target.writeUInt16BE(msgId, offset + this.idOffset)
    target.writeUInt32BE(seq, offset + this.payloadOffset + 2)
    target.writeDoubleBE(t, offset + this.payloadOffset + 6)
  }
}

/** Resolves with a connected socket, or rejects on error / timeout. */
function openSocket (port, host, timeoutMs, localAddress) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host, localAddress })
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`connect to ${host}:${port} timed out`)) }, timeoutMs)
    sock.once('connect', () => { clearTimeout(timer); sock.off('error', reject); resolve(sock) })
    sock.once('error', err => { clearTimeout(timer); reject(err) })
  })
}

/**
 * One MQTT connection. Callbacks (set the ones you need):
 *   onPublish(client, qos, msgId, buf, topicStart, topicEnd, payloadStart, payloadEnd, now)
 *   onAck(client, msgId, now)     PUBACK for QoS 1, PUBCOMP for QoS 2 (the publisher's flow is complete)
 *   onClose(client)
 * Incoming QoS 1 / 2 publishes are acknowledged automatically (PUBACK; PUBREC, then PUBCOMP on PUBREL), and an
 * outgoing QoS 2 PUBREC is answered with PUBREL. Acks produced while parsing one chunk go out in one write.
 */
export class Client {
  constructor (sock, name, protocolVersion = 4) {
    this.sock = sock
    this.name = name
    this.v5 = protocolVersion === 5
    this.sessionPresent = false
    this.connackCode = -1
    this.closed = false
    this.onPublish = null
    this.onAck = null
    this.onClose = null
    this._pending = null // unparsed tail of the previous chunk
    this._acks = [] // [firstByte, id, firstByte, id, ...] to send after this chunk
    this._waiters = new Map() // 'connack' | 'suback:<id>' -> resolve
    this.received = 0
    sock.on('data', chunk => this._data(chunk))
    sock.on('error', () => {})
    sock.on('close', () => {
      this.closed = true
      for (const [, w] of this._waiters) w.reject(new Error(`${name}: connection closed`))
      this._waiters.clear()
      if (this.onClose) this.onClose(this)
    })
  }

  /** `init(client)` runs before CONNECT is sent: set onPublish there to catch messages sent right after CONNACK. */
  /** `localAddress`: the source address (e.g. 127.0.3.1), to spread many connections over more source ports. */
  static async connect (port, { clientId, clean = true, keepalive = 0, host = '127.0.0.1', localAddress, timeoutMs = 10000, init, noDelay = false, protocolVersion = 4 } = {}) {
    const sock = await openSocket(port, host, timeoutMs, localAddress)
    // Nagle stays on by default (throughput runs write batches); latency probes turn it off.
    if (noDelay) sock.setNoDelay(true)
    const c = new Client(sock, clientId, protocolVersion)
    if (init) init(c)
    const connack = c._wait('connack', timeoutMs)
    sock.write(connectPacket({ clientId, clean, keepalive, protocolVersion }))
    await connack
    if (c.connackCode !== 0) {
      sock.destroy()
      throw new Error(`${clientId}: CONNACK return code ${c.connackCode}`)
    }
    return c
  }

  /** Sends SUBSCRIBE and resolves with the granted codes from the SUBACK. */
  async subscribe (subscriptions, messageId = 1, timeoutMs = 10000) {
    const p = this._wait(`suback:${messageId}`, timeoutMs)
    this.sock.write(subscribePacket(messageId, subscriptions, this.v5 ? 5 : 4))
    return await p
  }

  write (buf) { return this.sock.write(buf) }

  /** DISCONNECT, then close our side. Resolves when the socket is closed. */
  disconnect () {
    if (this.closed) return Promise.resolve()
    return new Promise(resolve => {
      this.sock.once('close', resolve)
      this.sock.end(DISCONNECT_PACKET)
      setTimeout(() => this.sock.destroy(), 2000).unref()
    })
  }

  destroy () { this.sock.destroy() }

  _wait (key, timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this._waiters.delete(key); reject(new Error(`${this.name}: no ${key} within ${timeoutMs} ms`)) }, timeoutMs)
      this._waiters.set(key, {
        resolve: v => { clearTimeout(timer); resolve(v) },
        reject: e => { clearTimeout(timer); reject(e) }
      })
    })
  }

  _settle (key, value) {
    const w = this._waiters.get(key)
    if (w) { this._waiters.delete(key); w.resolve(value) }
  }

  _data (chunk) {
    const now = performance.now()
    let b = chunk
    if (this._pending !== null) { b = Buffer.concat([this._pending, chunk]); this._pending = null }
    const n = b.length
    let pos = 0
    while (pos + 2 <= n) {
      const first = b[pos]
      let len = 0
      let mul = 1
      let i = pos + 1
      let byte
      let complete = true
      do {
        if (i >= n) { complete = false; break }
        byte = b[i++]
        len += (byte & 127) * mul
        mul *= 128
      } while (byte & 128)
      if (!complete || i + len > n) break
      this._packet(first >> 4, first & 15, b, i, i + len, now)
      pos = i + len
    }
    if (pos < n) this._pending = Buffer.from(b.subarray(pos))
    const acks = this._acks
    if (acks.length > 0) {
      const out = Buffer.allocUnsafe(acks.length * 2)
      for (let k = 0, o = 0; k < acks.length; k += 2, o += 4) {
        out[o] = acks[k]
        out[o + 1] = 2
        out.writeUInt16BE(acks[k + 1], o + 2)
      }
      this._acks = []
      if (!this.closed) this.sock.write(out)
    }
  }

  _packet (type, flags, b, start, end, now) {
    switch (type) {
      case PUBLISH: {
        const qos = (flags >> 1) & 3
        const tlen = b.readUInt16BE(start)
        const topicStart = start + 2
        const topicEnd = topicStart + tlen
        let p = topicEnd
        let msgId = 0
        if (qos > 0) { msgId = b.readUInt16BE(p); p += 2 }
        if (this.v5) p = skipProperties(b, p)
        this.received++
        if (qos === 1) this._acks.push(0x40, msgId)
        else if (qos === 2) this._acks.push(0x50, msgId)
        if (this.onPublish) this.onPublish(this, qos, msgId, b, topicStart, topicEnd, p, end, now)
        break
      }
      case PUBACK:
      case PUBCOMP:
        if (this.onAck) this.onAck(this, b.readUInt16BE(start), now)
        break
      case PUBREC:
        this._acks.push(0x62, b.readUInt16BE(start))
        break
      case PUBREL:
        this._acks.push(0x70, b.readUInt16BE(start))
        break
      case CONNACK:
        this.sessionPresent = (b[start] & 1) === 1
        this.connackCode = b[start + 1]
        this._settle('connack', this.connackCode)
        break
      case SUBACK: {
        const id = b.readUInt16BE(start)
        const codes = []
        for (let k = this.v5 ? skipProperties(b, start + 2) : start + 2; k < end; k++) codes.push(b[k])
        this._settle(`suback:${id}`, codes)
        break
      }
      default:
        break // PINGRESP, UNSUBACK: not used
    }
  }
}

/** Where an MQTT 5 property block starting at `at` (its length, then the properties) ends. */
function skipProperties (b, at) {
  let len = 0
  let mul = 1
  let byte
  do {
    byte = b[at++]
    len += (byte & 127) * mul
    mul *= 128
  } while (byte & 128)
  return at + len
}

/** A growable bitset of sequence numbers, to count distinct deliveries and duplicates per message. */
export class SeqSet {
  constructor (initialBits = 1 << 16) {
    this.bits = new Uint8Array(initialBits >> 3)
    this.count = 0
  }

  /** Marks seq; returns false if it was already marked (a duplicate). */
  add (seq) {
    const byte = seq >>> 3
    if (byte >= this.bits.length) {
      let size = this.bits.length * 2
      while (size <= byte) size *= 2
      const next = new Uint8Array(size)
      next.set(this.bits)
      this.bits = next
    }
    const mask = 1 << (seq & 7)
    if (this.bits[byte] & mask) return false
    this.bits[byte] |= mask
    this.count++
    return true
  }

  has (seq) {
    const byte = seq >>> 3
    return byte < this.bits.length && (this.bits[byte] & (1 << (seq & 7))) !== 0
  }
}

/** Disconnects every client in parallel: scenarios end with many open clients and closing them one by one is slow. */
export async function closeAll (clients) {
  await Promise.all(clients.map(c => c.disconnect()))
}

/** Ends a persistent session: a clean CONNECT with its id discards it [MQTT-3.1.2-6], then DISCONNECT. */
export async function discardSession (port, clientId, protocolVersion = 4) {
  const c = await Client.connect(port, { clientId, clean: true, protocolVersion })
  await c.disconnect()
}
