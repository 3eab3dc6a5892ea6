import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt'

export type Transport = 'tcp' | 'ws'
export const transports: Transport[] = ['tcp', 'ws']

export interface Received { topic: string, payload: string, qos: number, retain: boolean, dup: boolean, properties?: Record<string, unknown> }

export type TestClient = MqttClient & { received: Received[], sessionPresent: boolean, connack: IConnackPacket }

/** Connects an mqtt.js client (MQTT 3.1.1 unless `protocolVersion` says, no automatic reconnect) and waits for CONNACK. */
export async function connectClient (url: string, opts: IClientOptions = {}): Promise<TestClient> {
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts }) as TestClient
  client.received = []
  client.on('message', (topic, payload, packet) => {
    const received: Received = { topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, dup: packet.dup }
    if (packet.properties !== undefined) received.properties = packet.properties as Record<string, unknown>
    client.received.push(received)
  })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', connack => {
      client.sessionPresent = connack.sessionPresent
      client.connack = connack
      resolve()
    })
    client.once('error', reject)
  })
  return client
}

/** Connects an mqtt.js client at MQTT 5 (protocol level 5) and waits for CONNACK. */
export async function connectV5 (url: string, opts: IClientOptions = {}): Promise<TestClient> {
  return await connectClient(url, { protocolVersion: 5, ...opts })
}

/** Waits until `predicate` holds, polling; fails with `what` after the timeout. */
export async function waitFor (predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

export async function endClient (client: MqttClient, force = false): Promise<void> {
  await new Promise<void>(resolve => client.end(force, {}, () => resolve()))
}

/**
 * Publishes numbered QoS 0 messages ("0", "1", ...) to `topic` until stopped: bursts of 1 to 20, then a pause of 0 to
 * 2 ms, drawn from `random` (seeded by the caller). `next` is the number the next publish will carry.
 */
export function publishInBursts (pub: MqttClient, topic: string, random: () => number): { readonly next: number, stop: () => Promise<void> } {
  let next = 0
  let publishing = true
  const running = (async () => {
    while (publishing) {
      for (let burst = 1 + Math.floor(random() * 20); burst > 0; burst--) await pub.publishAsync(topic, String(next++), { qos: 0 })
      await sleep(Math.floor(random() * 3))
    }
  })()
  return {
    get next () { return next },
    stop: async () => {
      publishing = false
      await running
    }
  }
}
