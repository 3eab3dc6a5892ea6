import { describe, expect, it } from 'vitest'
import { connectLevel } from '../../src/protocol/connect-level.js'

// CONNECT, remaining length 12, "MQTT", level, flags, keepalive, empty client id
const connect = (level: number): Buffer => Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, level, 0x02, 0, 60, 0, 0])

// The answer on the wire (CONNACK 0x01, then close) is checked over TCP and WebSocket in test/conformance/connect.test.ts.
describe('reading the protocol level of the first CONNECT', () => {
  it('finds the level once enough bytes arrived, whatever the split', () => {
    const whole = connect(6)
    for (let cut = 0; cut < 9; cut++) expect(connectLevel(whole.subarray(0, cut))).toBe('incomplete')
    expect(connectLevel(whole.subarray(0, 9))).toBe(6)
    expect(connectLevel(connect(4))).toBe(4)
  })

  it('leaves anything that is not a CONNECT to the parser', () => {
    expect(connectLevel(Buffer.from([0x30, 2, 0, 0]))).toBe('not-connect')
    expect(connectLevel(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe('not-connect')
  })
})
