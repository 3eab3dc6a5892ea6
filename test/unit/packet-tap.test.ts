import { describe, expect, it } from 'vitest'
import mqttPacket from 'mqtt-packet'
import type { Client } from 'aedes'
import { tapAcknowledgements, tapPackets } from '../../src/protocol/packet-tap.js'

const ack = (first: number, id: number): Buffer => Buffer.from([first, 2, id >> 8, id & 0xff])
const PINGREQ = Buffer.from([0xc0, 0])

/** A connection's parser with aedes' one listener on it, as aedes' Client leaves it. */
function connection (seen: string[]): { client: Client, parse: (buf: Buffer) => void } {
  const parser = mqttPacket.parser()
  parser.on('packet', (p: { cmd: string }) => { seen.push(`aedes ${p.cmd}`) })
  return { client: { _parser: parser } as unknown as Client, parse: buf => { parser.parse(buf) } }
}

// The taps replaced one prependListener per feature: each must still see what it saw, in the same order.
describe('packet tap', () => {
  it('runs the newest tap first, every tap before aedes, and acknowledgement taps only on PUBACK, PUBREC and PUBCOMP', () => {
    const seen: string[] = []
    const { client, parse } = connection(seen)
    tapPackets(client, p => { seen.push(`guard ${p.cmd}`) })
    tapAcknowledgements(client, p => { seen.push(`ids ${p.cmd} ${String(p.messageId)}`) })
    tapAcknowledgements(client, p => { seen.push(`lag ${p.cmd} ${String(p.messageId)}`) })
    for (const buf of [ack(0x40, 7), ack(0x50, 8), ack(0x62, 9), ack(0x70, 8), PINGREQ]) parse(buf)
    expect(seen).toEqual([
      'lag puback 7', 'ids puback 7', 'guard puback', 'aedes puback',
      'lag pubrec 8', 'ids pubrec 8', 'guard pubrec', 'aedes pubrec',
      'guard pubrel', 'aedes pubrel',
      'lag pubcomp 8', 'ids pubcomp 8', 'guard pubcomp', 'aedes pubcomp',
      'guard pingreq', 'aedes pingreq'
    ])
  })

  it('gives a tap registered while a packet is handled the next packet, not that one', () => {
    const seen: string[] = []
    const { client, parse } = connection(seen)
    tapPackets(client, p => {
      seen.push(`first ${p.cmd}`)
      if (p.cmd === 'pingreq') tapAcknowledgements(client, a => { seen.push(`late ${a.cmd}`) })
    })
    parse(PINGREQ)
    parse(ack(0x40, 1))
    expect(seen).toEqual(['first pingreq', 'aedes pingreq', 'late puback', 'first puback', 'aedes puback'])
  })

  it('lets a tap change what aedes sees (a violation is closed by aedes, not handled)', () => {
    const seen: string[] = []
    const { client, parse } = connection(seen)
    tapPackets(client, p => { p.cmd = 'protocol-violation' })
    parse(ack(0x40, 1))
    expect(seen).toEqual(['aedes protocol-violation'])
  })
})
