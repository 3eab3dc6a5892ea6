import { describe, expect, it } from 'vitest'
import mqttPacket from 'mqtt-packet'
import { Admission } from '../../src/limits/admission.js'
import { regexField } from '../../src/limits/config-fields.js'
import { connectViolation, type ConnectLimits } from '../../src/limits/connect-rules.js'
import { FrameScanner } from '../../src/limits/frame-scanner.js'
import { LogThrottle } from '../../src/limits/log-throttle.js'
import { OutboundWindow } from '../../src/limits/outbound-window.js'
import { openFilesLimit, reservedFds } from '../../src/limits/open-files.js'
import { Unacknowledged } from '../../src/limits/unacknowledged.js'
import { AddressRate, Gcra, PublishThrottle } from '../../src/limits/rate.js'

describe('rates', () => {
  it('allows a second of burst, then one unit per 1/rate seconds', () => {
    const g = new Gcra(10)
    let taken = 0
    for (let i = 0; i < 20; i++) if (g.tryTake(0)) taken++
    expect(taken).toBe(10)
    expect(g.tryTake(50)).toBe(false)
    expect(g.tryTake(100)).toBe(true)
    expect(g.tryTake(100)).toBe(false)
  })

  it('reserves with growing delays instead of refusing, so nothing is dropped', () => {
    const g = new Gcra(10)
    const delays = Array.from({ length: 13 }, () => g.reserve(0))
    expect(delays.slice(0, 10).every(d => d === 0)).toBe(true)
    expect(delays.slice(10)).toEqual([100, 200, 300])
  })

  it('throttles publishes by messages and by bytes, naming the limit that binds', () => {
    const t = new PublishThrottle(100, 1000)
    expect(t.reserve(0, 900)).toEqual({ delayMs: 0, limit: 'limits.publishRateMessagesPerSecond' })
    expect(t.reserve(0, 600)).toEqual({ delayMs: 500, limit: 'limits.publishRateBytesPerSecond' })
    const m = new PublishThrottle(2, 0)
    m.reserve(0, 1)
    m.reserve(0, 1)
    expect(m.reserve(0, 1)).toEqual({ delayMs: 500, limit: 'limits.publishRateMessagesPerSecond' })
    expect(new PublishThrottle(0, 0).enabled).toBe(false)
  })

  it('limits new connections per address and forgets idle addresses when full', () => {
    const r = new AddressRate(2, 3)
    expect([r.tryTake('a', 0), r.tryTake('a', 0), r.tryTake('a', 0)]).toEqual([true, true, false])
    expect(r.tryTake('b', 0)).toBe(true)
    r.tryTake('c', 0)
    r.tryTake('d', 5000)
    expect(r.size).toBeLessThanOrEqual(3)
  })
})

describe('admission', () => {
  it('counts open sockets globally and per listener, releasing them once', () => {
    const a = new Admission({ maxConnections: 3, perListener: { mqtt: 2 }, connectionRatePerSecond: 0 })
    const r1 = a.admit('mqtt', 'x')
    const r2 = a.admit('mqtt', 'x')
    expect(a.admit('mqtt', 'x')).toEqual({ ok: false, limit: 'listeners.mqtt.maxConnections' })
    expect(a.admit('ws', 'x').ok).toBe(true)
    expect(a.admit('ws', 'x')).toEqual({ ok: false, limit: 'limits.maxConnections' })
    if (!r1.ok || !r2.ok) throw new Error('admitted')
    r1.release()
    r1.release()
    expect(a.connections).toBe(2)
    expect(a.admit('mqtt', 'x').ok).toBe(true)
  })

  it('refuses a source address over its connection rate, not the others', () => {
    let now = 0
    const a = new Admission({ maxConnections: 0, perListener: {}, connectionRatePerSecond: 2 }, () => now)
    expect(a.admit('mqtt', '1.1.1.1').ok).toBe(true)
    expect(a.admit('mqtt', '1.1.1.1').ok).toBe(true)
    expect(a.admit('mqtt', '1.1.1.1')).toEqual({ ok: false, limit: 'limits.connectionRatePerSecond' })
    expect(a.admit('mqtt', '2.2.2.2').ok).toBe(true)
    now = 500
    expect(a.admit('mqtt', '1.1.1.1').ok).toBe(true)
  })
})

describe('the frame scanner', () => {
  const publish = (payloadBytes: number): Buffer => mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(payloadBytes), qos: 0, dup: false, retain: false })
  const stream = Buffer.concat([
    mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 0 }),
    publish(10), publish(0), mqttPacket.generate({ cmd: 'pingreq' }), publish(200), publish(127), publish(128)
  ])

  it('follows packet boundaries however the stream is split', () => {
    for (const size of [1, 2, 3, 7, 64, stream.length]) {
      const s = new FrameScanner(300)
      for (let i = 0; i < stream.length; i += size) expect(s.scan(stream.subarray(i, i + size))).toBeUndefined()
    }
  })

  it('stops at the header of the first packet over the limit, before its body', () => {
    const s = new FrameScanner(100)
    const big = publish(200)
    expect(s.scan(publish(50))).toBeUndefined()
    expect(s.scan(big.subarray(0, 3))).toEqual({ kind: 'too-large', declared: 203 })
  })

  it('catches a huge declared length and a malformed one', () => {
    expect(new FrameScanner(1000).scan(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]))).toEqual({ kind: 'too-large', declared: 268_435_455 })
    expect(new FrameScanner(1000).scan(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toEqual({ kind: 'malformed' })
  })
})

describe('CONNECT limits', () => {
  const limits: ConnectLimits = { maxClientIdLength: 10, clientIdPattern: undefined, minKeepaliveSeconds: 0, maxKeepaliveSeconds: 600 }

  it('checks the client id length in bytes and refuses control characters', () => {
    expect(connectViolation(limits, 'abcdefghij', 60)).toBeUndefined()
    expect(connectViolation(limits, 'abcdefghijk', 60)?.limit).toBe('limits.maxClientIdLength')
    expect(connectViolation(limits, 'ééééé', 60)).toBeUndefined()
    expect(connectViolation(limits, 'éééééé', 60)?.limit).toBe('limits.maxClientIdLength')
    expect(connectViolation(limits, 'a\nb', 60)?.limit).toBe('limits.clientIdPattern')
    expect(connectViolation(limits, '', 60)).toBeUndefined()
  })

  it('applies the client id pattern', () => {
    const strict = { ...limits, clientIdPattern: /^[a-z0-9-]+$/u }
    expect(connectViolation(strict, 'dev-1', 60)).toBeUndefined()
    expect(connectViolation(strict, 'Dev_1', 60)?.limit).toBe('limits.clientIdPattern')
  })

  it('bounds the keepalive, and refuses keepalive 0 when a minimum is set', () => {
    expect(connectViolation(limits, 'a', 0)).toBeUndefined()
    expect(connectViolation(limits, 'a', 601)?.limit).toBe('limits.maxKeepaliveSeconds')
    const min = { ...limits, minKeepaliveSeconds: 10 }
    expect(connectViolation(min, 'a', 0)?.limit).toBe('limits.minKeepaliveSeconds')
    expect(connectViolation(min, 'a', 9)?.limit).toBe('limits.minKeepaliveSeconds')
    expect(connectViolation(min, 'a', 10)).toBeUndefined()
  })
})

describe('small helpers', () => {
  it('writes one log line per key per interval and counts the rest', () => {
    let now = 0
    const t = new LogThrottle(1000, () => now)
    expect(t.take('k')).toBe(0)
    expect(t.take('k')).toBeUndefined()
    expect(t.take('k')).toBeUndefined()
    expect(t.take('other')).toBe(0)
    now = 1000
    expect(t.take('k')).toBe(2)
  })

  it('lets messages wait behind a stalled connection up to the limit, then drops QoS 0 and disconnects QoS 1', () => {
    const w = new OutboundWindow(2, 0)
    expect(w.deliver(false, 1, 10)).toBe('deliver')
    expect([w.deliver(true, 0, 10), w.deliver(true, 1, 10)]).toEqual(['deliver', 'deliver'])
    expect(w.deliver(true, 0, 10)).toBe('drop')
    expect(w.deliver(true, 2, 10)).toBe('disconnect')
    expect(w.binding).toBe('limits.maxInflightMessages')
    w.drained()
    expect(w.deliver(true, 1, 10)).toBe('deliver')
    expect(new OutboundWindow(0, 0).deliver(true, 1, 10)).toBe('deliver')
  })

  it('bounds the bytes waiting behind a stalled connection too', () => {
    const w = new OutboundWindow(0, 100)
    expect([w.deliver(true, 1, 60), w.deliver(true, 1, 40)]).toEqual(['deliver', 'deliver'])
    expect(w.deliver(true, 1, 1)).toBe('disconnect')
    expect(w.binding).toBe('limits.maxInflightBytes')
    expect(w.waitingBytes).toBe(100)
    w.drained()
    expect(w.deliver(true, 0, 100)).toBe('deliver')
    expect(w.deliver(true, 0, 1)).toBe('drop')
  })

  it('validates a regular expression setting', () => {
    const f = regexField('', 'doc')
    expect(f.parse('^[a-z]+$')).toEqual({ ok: true, value: '^[a-z]+$' })
    expect(f.parse('')).toEqual({ ok: true, value: '' })
    expect(f.parse('([a-z')).toMatchObject({ ok: false })
  })
})

describe('unacknowledged copies of a clean session', () => {
  it('settles the oldest copy of a QoS with each PUBACK (QoS 1) or PUBREC (QoS 2) and hands over the rest', () => {
    const u = new Unacknowledged<string>(0, 0)
    for (const [qos, p] of [[1, 'a'], [2, 'b'], [1, 'c'], [2, 'd'], [1, 'e']] as Array<[1 | 2, string]>) u.sent(qos, p, 10)
    u.acknowledged(1)
    u.acknowledged(2)
    expect(u.size).toBe(3)
    expect(u.take()).toEqual(['c', 'e', 'd'])
    expect(u.size).toBe(0)
    u.acknowledged(1)
    expect(u.take()).toEqual([])
  })

  it('forgets the oldest past its bounds, counting each entry\'s own memory', () => {
    const u = new Unacknowledged<number>(3, 0)
    for (let i = 0; i < 5; i++) u.sent(1, i, 1)
    expect(u.take()).toEqual([2, 3, 4])
    const b = new Unacknowledged<number>(0, 3 * (100 + 64))
    for (let i = 0; i < 5; i++) b.sent(1, i, 100)
    expect(b.take()).toEqual([2, 3, 4])
    const many = new Unacknowledged<number>(0, 1000)
    for (let i = 0; i < 100; i++) many.sent(2, i, 0)
    expect(many.size).toBe(15)
  })
})

describe('open files', () => {
  const limits = (soft: string): string => [
    'Limit                     Soft Limit           Hard Limit           Units',
    'Max processes             95447                95447                processes',
    `Max open files            ${soft}                20000                files`,
    'Max locked memory         8388608              8388608              bytes'
  ].join('\n')

  it('reads the soft open-files limit from /proc/self/limits; none when unlimited or unknown', () => {
    expect(openFilesLimit(limits('1024'))).toBe(1024)
    expect(openFilesLimit(limits('unlimited'))).toBeUndefined()
    expect(openFilesLimit('')).toBeUndefined()
    const own = openFilesLimit()
    expect(own === undefined || own > 0).toBe(true)
  })

  it('keeps 1 % of the descriptors, at least 32, for everything that is not a connection', () => {
    expect(reservedFds(128)).toBe(32)
    expect(reservedFds(20_000)).toBe(200)
    expect(reservedFds(1_048_576)).toBe(10_486)
  })
})
