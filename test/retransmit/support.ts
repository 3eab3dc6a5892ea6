import { expect } from 'vitest'
import type { IPublishPacket, Packet } from 'mqtt-packet'
import type { TestBroker } from '../helpers/broker.js'
import { sleep } from '../helpers/clients.js'
import type { RawClient } from '../helpers/raw-client.js'
import { mqttClient, rawClient, uid } from '../conformance/support.js'
import type { Transport } from '../helpers/clients.js'
import { scrape, value } from '../metrics/prom.js'

/** The retry interval of the brokers under test: short, and asserted against with generous deadlines. */
export const RETRY_MS = 200
/** How long "nothing more is resent" is watched: five intervals. */
export const QUIET_MS = RETRY_MS * 5

/** A byte-level client connected (clean unless told) and subscribed to `topic`; it acknowledges nothing by itself. */
export async function subscribedRaw (tb: TestBroker, transport: Transport, topic: string, qos: 1 | 2, opts: { clientId?: string, clean?: boolean } = {}): Promise<RawClient> {
  const raw = await rawClient(tb, transport)
  const connack = await raw.connect({ clientId: opts.clientId ?? uid('r'), clean: opts.clean ?? true })
  expect(connack.returnCode).toBe(0)
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] })
  await raw.next('suback')
  return raw
}

export function publishesWith (raw: RawClient, messageId: number | undefined): IPublishPacket[] {
  return raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish' && p.messageId === messageId)
}

export function packetsWith (raw: RawClient, cmd: Packet['cmd'], messageId: number | undefined): Packet[] {
  return raw.received.filter(p => p.cmd === cmd && (p as { messageId?: number }).messageId === messageId)
}

/** The next PUBLISH with this packet id and DUP set: a retransmission. */
export async function resentPublish (raw: RawClient, messageId: number | undefined): Promise<IPublishPacket> {
  return await raw.next<IPublishPacket>(p => p.cmd === 'publish' && p.messageId === messageId && p.dup, RETRY_MS * 15)
}

/**
 * PINGREQ and its PINGRESP: the broker has read everything sent before it (an acknowledgement included), and
 * whatever it wrote before handling that acknowledgement has arrived.
 */
export async function roundTrip (raw: RawClient): Promise<void> {
  raw.send({ cmd: 'pingreq' })
  await raw.next('pingresp')
}

/** Asserts that nothing more matching `count` arrives over QUIET_MS. */
export async function expectQuiet (count: () => number): Promise<void> {
  const before = count()
  await sleep(QUIET_MS)
  expect(count()).toBe(before)
}

export async function retransmissions (tb: TestBroker, packet: 'publish' | 'pubrel'): Promise<number> {
  return value(await scrape(tb.adminUrl), `culex_retransmissions_total{packet="${packet}"}`)
}

/** The debug lines the broker wrote for resends to this client. */
export function resendLogs (tb: TestBroker, clientId: string): Array<Record<string, unknown>> {
  return tb.logs.filter(l => l.msg === 'unacknowledged packets resent' && l.clientId === clientId)
}

/**
 * Publishes `payload` at QoS 1 on `topic`, to which `raw` is subscribed: the delivery is sent again and again with
 * DUP=1, the same packet id and the same message while it is not acknowledged, and no more after the PUBACK.
 */
export async function expectResentUntilPuback (tb: TestBroker, raw: RawClient, topic: string, payload: string): Promise<void> {
  const pub = await mqttClient(tb, 'tcp')
  await pub.publishAsync(topic, payload, { qos: 1 })
  const first = await raw.next<IPublishPacket>('publish')
  expect(first).toMatchObject({ qos: 1, dup: false, topic })
  const again = await resentPublish(raw, first.messageId)
  expect(again).toMatchObject({ qos: 1, dup: true, retain: false, topic })
  expect(again.payload.toString()).toBe(payload)
  await resentPublish(raw, first.messageId)

  raw.send({ cmd: 'puback', messageId: first.messageId })
  await roundTrip(raw)
  await expectQuiet(() => publishesWith(raw, first.messageId).length)
  expect(raw.isClosed).toBe(false)
}
