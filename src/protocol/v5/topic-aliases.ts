import { PROTOCOL_ERROR } from './disconnect.js'

/** DISCONNECT reason code for a Topic Alias of 0 or over the maximum the server announced (MQTT 5 §3.3.2.3.4). */
export const TOPIC_ALIAS_INVALID = 0x94

interface AliasedPublish {
  topic: string
  properties?: { topicAlias?: number }
}

/**
 * The Topic Aliases a client sets on its PUBLISHes (MQTT 5 §3.3.2.3.4), for one connection: a PUBLISH with a topic
 * and an alias sets the alias, one with an empty topic uses it. The PUBLISH leaves here with its topic and without
 * the alias, so aedes, the store and every subscriber see an ordinary PUBLISH. Returns the DISCONNECT reason code
 * for a PUBLISH that breaks the rules: an alias of 0 or over the maximum (0x94), an empty topic with an alias not
 * set on this connection (0x82, protocol error).
 */
export function resolveIncomingAlias (aliases: Map<number, string>, maximum: number, packet: AliasedPublish): number | undefined {
  const properties = packet.properties as { topicAlias: number }
  const alias = properties.topicAlias
  if (alias < 1 || alias > maximum) return TOPIC_ALIAS_INVALID
  if (packet.topic === '') {
    const topic = aliases.get(alias)
    if (topic === undefined) return PROTOCOL_ERROR
    packet.topic = topic
  } else {
    aliases.set(alias, packet.topic)
  }
  delete packet.properties?.topicAlias
  return undefined
}

interface OutgoingPublish {
  topic?: unknown
  properties?: Record<string, unknown>
}

/**
 * The Topic Aliases the server sets on its PUBLISHes to a client that accepts some (Topic Alias Maximum in its
 * CONNECT), for one connection: the first `maximum` distinct topics sent each get an alias, set on their first
 * PUBLISH (topic and alias) and used from then on (an empty topic and the alias). An alias is never given to
 * another topic, so a resend of any PUBLISH (retransmit) means what it meant the first time. Called as the packet
 * is encoded, right before its write: the client sees an alias set before it is used.
 */
export class OutgoingAliases {
  readonly #byTopic = new Map<string, number>()
  readonly #maximum: number

  constructor (maximum: number) {
    this.#maximum = maximum
  }

  /** The PUBLISH as it goes to the client: a copy with the alias, or the packet itself when it takes none. */
  apply<P extends OutgoingPublish> (packet: P): P {
    const topic = packet.topic
    if (typeof topic !== 'string' || topic === '') return packet
    const alias = this.#byTopic.get(topic)
    if (alias !== undefined) return { ...packet, topic: '', properties: { ...packet.properties, topicAlias: alias } }
    if (this.#byTopic.size >= this.#maximum) return packet
    const fresh = this.#byTopic.size + 1
    this.#byTopic.set(topic, fresh)
    return { ...packet, properties: { ...packet.properties, topicAlias: fresh } }
  }
}
