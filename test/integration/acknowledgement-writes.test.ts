import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { waitFor } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

/** Records every chunk aedes writes to one client's connection, as the socket gets it. */
function recordWrites (t: TestBroker, clientId: string): Buffer[] {
  const conn = (t.broker.aedes as unknown as { clients: Record<string, { conn: { write: (chunk: unknown, ...rest: unknown[]) => boolean } }> }).clients[clientId].conn
  const chunks: Buffer[] = []
  const write = conn.write
  conn.write = function (chunk: unknown, ...rest: unknown[]) {
    chunks.push(Buffer.from(chunk as Buffer))
    return write.call(this, chunk, ...rest)
  }
  return chunks
}

/**
 * A successful acknowledgement to an MQTT 3.1 or 3.1.1 client leaves as one write of its four bytes (as it does for
 * MQTT 5), not as mqtt-packet's three pieces (header, length, packet id), each through every wrapper of the
 * connection's write: one acknowledgement per QoS 1 PUBLISH received.
 */
describe('acknowledgements to MQTT 3.1 and 3.1.1 clients', () => {
  let t: TestBroker
  const open: RawClient[] = []
  beforeEach(async () => { t = await startTestBroker() })
  afterEach(async () => {
    for (const c of open.splice(0)) c.destroy()
    await t.close()
  })

  for (const version of [3, 4] as const) {
    it(`PUBACK, PUBREC and PUBCOMP each go out as one write of mqtt-packet's bytes (protocol level ${version})`, async () => {
      const pub = await openRaw('tcp', t, { version })
      open.push(pub)
      await pub.connect({ clientId: `acks-${version}`, protocolId: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version })
      const writes = recordWrites(t, `acks-${version}`)
      pub.send({ cmd: 'publish', topic: 'acks/1', payload: Buffer.from('one'), qos: 1, messageId: 0x1234, retain: false, dup: false })
      await pub.next('puback')
      pub.send({ cmd: 'publish', topic: 'acks/2', payload: Buffer.from('two'), qos: 2, messageId: 0x00ff, retain: false, dup: false })
      await pub.next('pubrec')
      pub.send({ cmd: 'pubrel', messageId: 0x00ff } as Packet)
      await pub.next('pubcomp')
      await waitFor(() => writes.length >= 3, 'three writes')
      const expected = [
        { cmd: 'puback', messageId: 0x1234 },
        { cmd: 'pubrec', messageId: 0x00ff },
        { cmd: 'pubcomp', messageId: 0x00ff }
      ].map(p => mqttPacket.generate(p as Packet, { protocolVersion: version }))
      expect(writes.map(w => [...w])).toEqual(expected.map(e => [...e]))
    })
  }
})
