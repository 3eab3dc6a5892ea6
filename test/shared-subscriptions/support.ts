import type { MqttClient } from 'mqtt'
import type { IPublishPacket, ISubackPacket } from 'mqtt-packet'
import { connectClient, endClient, waitFor, type Received } from '../helpers/clients.js'
import { openRaw, type RawClient } from '../helpers/raw-client.js'

export type Member = MqttClient & { received: Received[], sessionPresent: boolean }

/** Connects `n` mqtt.js clients and subscribes each to `filter` (a `$share/` filter) at `qos`. */
export async function members (url: string, n: number, filter: string, qos: 0 | 1 | 2 = 1, prefix = 'm'): Promise<Member[]> {
  const out: Member[] = []
  for (let i = 0; i < n; i++) {
    const c = await connectClient(url, { clientId: `${prefix}${i}` })
    await c.subscribeAsync(filter, { qos })
    out.push(c)
  }
  return out
}

/** Publishes payloads `0..count-1` (as strings) on `topic`, `window` at a time. */
export async function publishMany (pub: MqttClient, topic: string | ((i: number) => string), count: number, qos: 0 | 1 | 2 = 1, window = 200): Promise<void> {
  for (let i = 0; i < count; i += window) {
    const batch: Array<Promise<unknown>> = []
    for (let j = i; j < Math.min(count, i + window); j++) batch.push(pub.publishAsync(typeof topic === 'string' ? topic : topic(j), String(j), { qos }))
    await Promise.all(batch)
  }
}

export function payloads (clients: Member[]): string[] {
  return clients.flatMap(c => c.received.map(r => r.payload))
}

export async function waitTotal (clients: Member[], count: number, what: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => payloads(clients).length >= count, `${what}: ${count} messages (have ${payloads(clients).length})`, timeoutMs)
}

export async function endAll (clients: MqttClient[]): Promise<void> {
  await Promise.all(clients.map(async c => await endClient(c, true)))
}

/** GET from the admin API, parsed. */
export async function adminGet<T = unknown> (adminUrl: string, path: string): Promise<T> {
  const res = await fetch(adminUrl + path)
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`)
  return await res.json() as T
}

/** A member that never acknowledges anything (a byte-level client): what it received is in `publishes()`. */
export async function silentMember (url: string, clientId: string, filter: string, qos: 0 | 1 | 2 = 1, clean = true): Promise<RawClient & { publishes: () => IPublishPacket[], publishTimes: () => number[] }> {
  const raw = await openRaw('tcp', { mqttUrl: url, wsUrl: '' })
  const connack = await raw.connect({ clientId, clean })
  if (connack.returnCode !== 0) throw new Error(`CONNACK ${connack.returnCode}`)
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] })
  const suback = await raw.next<ISubackPacket>('suback')
  if (suback.granted[0] !== qos) throw new Error(`granted ${String(suback.granted[0])}`)
  return Object.assign(raw, {
    publishes: () => raw.received.filter((p): p is IPublishPacket => p.cmd === 'publish'),
    /** When each of publishes() arrived. */
    publishTimes: () => raw.receivedAt.filter((_, i) => raw.received[i].cmd === 'publish')
  })
}
