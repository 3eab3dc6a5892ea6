import type { Readable } from 'node:stream'

/**
 * aedes 1.2 sends a retained message to a new subscriber as a new packet made of its command, QoS, topic and payload
 * only (lib/handlers/subscribe.js sendRetained), so the stored MQTT 5 properties are left behind. The payload is the
 * one object that travels from the store to the delivery router unchanged: the properties are found by it.
 */
const propertiesByPayload = new WeakMap<object, unknown>()

export interface RetainedSource {
  createRetainedStreamCombi: (patterns: string[]) => Readable
}

interface StoredRetained { payload?: unknown, properties?: unknown }

export function carryRetainedProperties (store: RetainedSource): void {
  const stream = store.createRetainedStreamCombi.bind(store)
  store.createRetainedStreamCombi = (patterns) => stream(patterns).map((packet: StoredRetained) => {
    if (packet.properties !== undefined && typeof packet.payload === 'object' && packet.payload !== null) propertiesByPayload.set(packet.payload, packet.properties)
    return packet
  })
}

/** The stored properties of a retained message aedes is sending to a new subscriber, found by its payload. */
export function retainedProperties (payload: unknown): unknown {
  return typeof payload === 'object' && payload !== null ? propertiesByPayload.get(payload) : undefined
}
