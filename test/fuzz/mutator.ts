import mqttPacket, { type Packet } from 'mqtt-packet'

/**
 * Hostile MQTT input for the fuzz test: well-formed packets from mqtt-packet, then mutated (bit flips, truncation,
 * wrong and huge Remaining Lengths, invalid UTF-8 topics, garbage), all from one seeded generator so a failing run
 * can be replayed with FUZZ_SEED.
 */
export class Rng {
  private s: number
  constructor (seed: number) { this.s = seed >>> 0 }
  /** mulberry32 */
  next (): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0
    let t = this.s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  int (max: number): number { return Math.floor(this.next() * max) }
  pick<T> (items: readonly T[]): T { return items[this.int(items.length)] }
  chance (p: number): boolean { return this.next() < p }
  bytes (n: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }
}

// Topics stay clear of the prefixes the well-behaved clients use (keep/, steady/), so the fuzzer cannot make
// them see messages they do not expect except by an astronomically unlikely mutation.
const levels = ['fz', 'a', 'b', '+', '#', '', '$SYS', '$share', 'x'.repeat(40), 'ü', 'sensor', '🙂']

function topic (r: Rng, wildcards: boolean): string {
  const n = 1 + r.int(5)
  const parts = ['fz']
  for (let i = 0; i < n; i++) {
    const l = r.pick(levels)
    parts.push(!wildcards && (l === '+' || l === '#') ? 'w' : l)
  }
  if (r.chance(0.05)) return '$SYS/fz/' + parts.join('/')
  return parts.join('/')
}

export function validPacket (r: Rng, clientId: string): Packet {
  const qos = r.int(3) as 0 | 1 | 2
  const messageId = 1 + r.int(65535)
  switch (r.int(10)) {
    case 0: return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: r.chance(0.8), keepalive: r.int(120), ...(r.chance(0.3) ? { will: { topic: topic(r, false), payload: r.bytes(r.int(50)), qos, retain: r.chance(0.2) } } : {}) }
    case 1: case 2: case 3: return { cmd: 'publish', topic: topic(r, false), payload: r.bytes(r.chance(0.1) ? r.int(70_000) : r.int(200)), qos, messageId, retain: r.chance(0.1), dup: r.chance(0.1) }
    case 4: return { cmd: 'subscribe', messageId, subscriptions: Array.from({ length: 1 + r.int(4) }, () => ({ topic: topic(r, true), qos })) }
    case 5: return { cmd: 'unsubscribe', messageId, unsubscriptions: [topic(r, true)] }
    case 6: return { cmd: r.pick(['puback', 'pubrec', 'pubrel', 'pubcomp'] as const), messageId }
    case 7: return { cmd: 'pingreq' }
    case 8: return { cmd: 'disconnect' }
    default: return { cmd: 'publish', topic: topic(r, false), payload: Buffer.from('x'), qos: 0, retain: false, dup: false }
  }
}

function remainingLength (n: number): Buffer {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Buffer.from(out)
}

/** A PUBLISH whose topic is not valid UTF-8 (overlong, lone surrogate, NUL, truncated sequence). */
function badUtf8Publish (r: Rng): Buffer {
  const bad = r.pick([[0xc3, 0x28], [0xed, 0xa0, 0x80], [0x61, 0x00, 0x62], [0xe2, 0x82], [0xc0, 0xaf], [0xff, 0xfe]])
  const t = Buffer.from([0x66, 0x7a, 0x2f, ...bad])
  const body = Buffer.concat([Buffer.from([t.length >> 8, t.length & 0xff]), t, Buffer.from('payload')])
  return Buffer.concat([Buffer.from([0x30]), remainingLength(body.length), body])
}

/** One chunk of hostile bytes. */
export function hostileBytes (r: Rng, clientId: string): Buffer {
  const kind = r.int(9)
  if (kind === 0) return r.bytes(1 + r.int(300))
  if (kind === 1) return badUtf8Publish(r)
  if (kind === 2) {
    // A huge declared length, followed by a little of the body (the rest never comes).
    const header = Buffer.from([r.pick([0x10, 0x30, 0x32, 0x82, 0xa2]), ...remainingLength(r.pick([268_435_455, 100_000_000, 2_000_000, 70_000]))])
    return Buffer.concat([header, r.bytes(r.int(100))])
  }
  if (kind === 3) return Buffer.from([r.pick([0x30, 0x10, 0x82]), 0xff, 0xff, 0xff, 0xff, 0x7f]) // malformed length
  let bytes: Buffer
  try {
    bytes = mqttPacket.generate(validPacket(r, clientId))
  } catch {
    return r.bytes(8)
  }
  if (kind === 4) return bytes
  if (kind === 5) return bytes.subarray(0, r.int(bytes.length)) // truncated
  if (kind === 6) {
    // Wrong Remaining Length: the declared length no longer matches the body.
    const out = Buffer.from(bytes)
    out[1] = r.int(256)
    return out
  }
  const out = Buffer.from(bytes)
  for (let i = 0, n = 1 + r.int(4); i < n; i++) out[r.int(out.length)] ^= 1 << r.int(8)
  return out
}

export function connectBytes (clientId: string, r: Rng): Buffer {
  return mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: r.chance(0.5) ? 0 : 30 })
}
