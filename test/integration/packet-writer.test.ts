import { createRequire } from 'node:module'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startTestBroker, type TestBroker } from '../helpers/broker.js'
import { connectClient, connectV5, endClient, waitFor, type TestClient } from '../helpers/clients.js'

/** The number buffers mqtt-packet makes at its first write unless told not to (as aedes loads it: one copy here). */
const numberCache = (createRequire(createRequire(import.meta.url).resolve('aedes'))('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> }).cache

/**
 * mqtt-packet builds a Buffer for each of the 65,536 16-bit numbers at its first write by default: about 30 ms and
 * 7 MB of heap, which the first client to connect after a start (a restart's first reconnect) waited for. The broker
 * turns that off before it serves anyone, and the packets mqtt-packet still writes for it carry their numbers right.
 */
describe('packets mqtt-packet writes for the broker', () => {
  let t: TestBroker
  const clients: TestClient[] = []
  beforeEach(async () => { t = await startTestBroker() })
  afterEach(async () => {
    for (const c of clients.splice(0)) await endClient(c, true)
    await t.close()
  })

  it('carry their packet ids without the 65,536-buffer number cache, for MQTT 3.1.1 and MQTT 5 clients', async () => {
    const v3 = await connectClient(t.mqttUrl, { clientId: 'writer-v3', keepalive: 1 })
    const v5 = await connectV5(t.mqttUrl, { clientId: 'writer-v5', keepalive: 1 })
    clients.push(v3, v5)
    for (const c of [v3, v5]) {
      // SUBACK and UNSUBACK are written by mqtt-packet with the SUBSCRIBE's id: a wrong id fails the client's await
      for (let i = 0; i < 3; i++) {
        await c.subscribeAsync(`writer/${c.options.clientId}/${i}`, { qos: 1 })
        await c.unsubscribeAsync(`writer/${c.options.clientId}/${i}`)
      }
      await c.subscribeAsync(`writer/${c.options.clientId}/in`, { qos: 2 })
      await c.publishAsync(`writer/${c.options.clientId}/in`, 'two', { qos: 2 })
      await waitFor(() => c.received.some(m => m.payload === 'two' && m.qos === 2), `${c.options.clientId} gets its QoS 2 message`)
    }
    // a refused MQTT 5 PUBLISH gets an acknowledgement with a reason code, written by mqtt-packet
    const refused = await v5.publishAsync('$SYS/nope', 'x', { qos: 1 }).then(() => 0, (err: { code?: number }) => err.code ?? -1)
    expect(refused).toBe(0x90)
    // PINGRESP after a keep alive interval
    let pongs = 0
    v3.on('packetreceive', p => { if (p.cmd === 'pingresp') pongs++ })
    await waitFor(() => pongs > 0, 'a PINGRESP', 4000)
    expect(Object.keys(numberCache)).toHaveLength(0)
  })
})
