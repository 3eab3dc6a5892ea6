import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { OutboundFrames, toBuffer, withDup, type Frame, type Part } from '../../src/retransmit/outbound-frames.js'
import { RetransmitTracker } from '../../src/retransmit/tracker.js'
import { sweepEveryMs } from '../../src/retransmit/hooks.js'

const publish = (messageId: number, qos: 1 | 2, payload = `p${messageId}`): IPublishPacket =>
  ({ cmd: 'publish', topic: 'a/ü', payload: Buffer.from(payload), qos, messageId, retain: false, dup: false })

const stream: Packet[] = [
  { cmd: 'connack', returnCode: 0, sessionPresent: false },
  publish(1, 1),
  { cmd: 'publish', topic: 'q0', payload: Buffer.from('zero'), qos: 0, retain: false, dup: false },
  { cmd: 'suback', messageId: 9, granted: [1] },
  publish(2, 2, 'x'.repeat(300)),
  { cmd: 'pubrel', messageId: 2 },
  { cmd: 'pingresp' },
  publish(65535, 1)
]

const bytesOf = (parts: readonly Part[]): Buffer => Buffer.concat(parts.map(toBuffer))

function capture (write: (frames: OutboundFrames) => void): Frame[] {
  const frames: Frame[] = []
  write(new OutboundFrames(frame => frames.push(frame)))
  return frames
}

describe('OutboundFrames', () => {
  const whole = stream.map(p => mqttPacket.generate(p))
  const tracked = [1, 4, 5, 7]

  it('reports the QoS 1/2 PUBLISH and PUBREL packets, each with exactly its bytes, however the writes were cut', () => {
    const joined = Buffer.concat(whole)
    for (const cut of [1, 3, 7, 64, joined.length]) {
      const frames = capture(f => {
        for (let at = 0; at < joined.length; at += cut) f.write(joined.subarray(at, at + cut))
      })
      expect(frames.map(f => [f.type, f.messageId, f.qos])).toEqual([['publish', 1, 1], ['publish', 2, 2], ['pubrel', 2, 0], ['publish', 65535, 1]])
      expect(frames.map(f => bytesOf(f.parts))).toEqual(tracked.map(i => whole[i]))
    }
  })

  it('takes the packets as mqtt-packet writes them, the topic as a string, and ends on a packet boundary', () => {
    const frames = capture(f => {
      const sink = { write: (chunk: unknown, encoding?: BufferEncoding) => { f.write(chunk, encoding); return true } }
      for (const p of stream) mqttPacket.writeToStream(p, sink as never)
      expect(f.atBoundary).toBe(true)
    })
    expect(frames.some(f => f.parts.some(part => !Buffer.isBuffer(part)))).toBe(true)
    expect(frames.map(f => bytesOf(f.parts))).toEqual(tracked.map(i => whole[i]))
  })

  it('knows when a packet is only partly written', () => {
    capture(f => {
      f.write(whole[1].subarray(0, 5))
      expect(f.atBoundary).toBe(false)
      f.write(whole[1].subarray(5))
      expect(f.atBoundary).toBe(true)
    })
  })

  it('sets DUP on a copy of the pieces, leaving what was written as it was', () => {
    const bytes = mqttPacket.generate(publish(3, 1))
    const parts: Part[] = [bytes]
    const again = withDup(parts)
    expect(bytesOf(again)[0]).toBe(bytes[0] | 0x08)
    expect(bytesOf(again).subarray(1)).toEqual(bytes.subarray(1))
    expect(parts[0]).toBe(bytes)
    expect(bytes[0] & 0x08).toBe(0)
  })
})

function frame (type: Frame['type'], messageId: number, qos = 1): Frame {
  // Not real packets: the last piece is the identifier, which is all these tests read back.
  return { type, qos, messageId, parts: [Buffer.from([type === 'pubrel' ? 0x62 : 0x30 | (qos << 1)]), Buffer.from([messageId])] }
}

describe('RetransmitTracker', () => {
  const resend = (tracker: RetransmitTracker, now: number, accept = Infinity): number[] => {
    const written: number[] = []
    tracker.resendDue(now, parts => {
      written.push(toBuffer(parts[parts.length - 1])[0])
      return written.length < accept
    })
    return written
  }

  it('resends what waited an interval, oldest first, and each again an interval after its last send', () => {
    const t = new RetransmitTracker(100)
    t.sent(frame('publish', 1), 0)
    t.sent(frame('publish', 2), 30)
    t.sent(frame('publish', 3), 60)
    expect(resend(t, 99)).toEqual([])
    expect(resend(t, 100)).toEqual([1])
    expect(resend(t, 160)).toEqual([2, 3])
    expect(resend(t, 199)).toEqual([])
    expect(resend(t, 200)).toEqual([1])
  })

  it('stops after a write the connection could not take, and goes on in the same order next time', () => {
    const t = new RetransmitTracker(100)
    for (let id = 1; id <= 4; id++) t.sent(frame('publish', id), id)
    expect(resend(t, 500, 2)).toEqual([1, 2])
    expect(resend(t, 510)).toEqual([3, 4])
  })

  it('follows the QoS 2 flow: no PUBLISH after PUBREC, the PUBREL until PUBCOMP', () => {
    const t = new RetransmitTracker(100)
    t.sent(frame('publish', 7, 2), 0)
    t.received(7)
    expect(resend(t, 1000)).toEqual([])
    t.sent(frame('pubrel', 7), 1000)
    expect(t.size).toBe(1)
    expect(resend(t, 1100)).toEqual([7])
    t.received(7)
    expect(resend(t, 1200)).toEqual([7])
    t.completed(7)
    expect(t.size).toBe(0)
  })

  it('ignores PUBREC for a QoS 1 message and forgets on PUBACK', () => {
    const t = new RetransmitTracker(100)
    t.sent(frame('publish', 5), 0)
    t.received(5)
    expect(resend(t, 100)).toEqual([5])
    t.completed(5)
    expect(resend(t, 1000)).toEqual([])
  })

  it('a PUBREL takes the place of its PUBLISH, due from when it was sent, after what was sent before it', () => {
    const t = new RetransmitTracker(100)
    t.sent(frame('publish', 1, 2), 0)
    t.sent(frame('publish', 2), 10)
    t.received(1)
    t.sent(frame('pubrel', 1), 50)
    expect(t.size).toBe(2)
    expect(resend(t, 120)).toEqual([2])
    expect(resend(t, 150)).toEqual([1])
  })

  it('writes a PUBLISH again with DUP set, a PUBREL as it was', () => {
    const t = new RetransmitTracker(100)
    const bytes = mqttPacket.generate(publish(4, 1))
    t.sent({ type: 'publish', qos: 1, messageId: 4, parts: [bytes] }, 0)
    t.sent({ type: 'pubrel', qos: 0, messageId: 6, parts: [Buffer.from([0x62, 2, 0, 6])] }, 0)
    const written: Buffer[] = []
    t.resendDue(100, parts => { written.push(bytesOf(parts)); return true })
    expect(written[0]).toEqual(mqttPacket.generate({ ...publish(4, 1), dup: true }))
    expect(written[1]).toEqual(Buffer.from([0x62, 2, 0, 6]))
  })
})

describe('sweepEveryMs', () => {
  it('is a quarter of the interval, between 25 ms and a second', () => {
    expect(sweepEveryMs(100)).toBe(25)
    expect(sweepEveryMs(2000)).toBe(500)
    expect(sweepEveryMs(60_000)).toBe(1000)
  })
})
