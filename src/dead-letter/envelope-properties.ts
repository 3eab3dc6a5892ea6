/**
 * The MQTT 5 PUBLISH properties of a dead letter as its envelope shows them (docs/dead-letter.md): JSON-friendly
 * (Correlation Data in base64, User Properties as [key, value] pairs in the order received, a repeated key once
 * per value) and only those that travel with a message (protocol/v5/outgoing.ts forwardedProperties). Null when
 * the message had none (an MQTT 3.1.1 publisher's, say).
 */
export interface EnvelopeProperties {
  payloadFormatIndicator?: boolean
  messageExpiryInterval?: number
  contentType?: string
  responseTopic?: string
  /** base64 */
  correlationData?: string
  userProperties?: Array<[string, string]>
}

export function envelopeProperties (properties: Record<string, unknown> | undefined): EnvelopeProperties | null {
  if (properties === undefined) return null
  const out: EnvelopeProperties = {}
  const { payloadFormatIndicator, messageExpiryInterval, contentType, responseTopic, correlationData, userProperties } = properties
  if (typeof payloadFormatIndicator === 'boolean') out.payloadFormatIndicator = payloadFormatIndicator
  if (typeof messageExpiryInterval === 'number') out.messageExpiryInterval = messageExpiryInterval
  if (typeof contentType === 'string') out.contentType = contentType
  if (typeof responseTopic === 'string') out.responseTopic = responseTopic
  if (correlationData instanceof Uint8Array) out.correlationData = Buffer.from(correlationData).toString('base64')
  if (userProperties !== null && typeof userProperties === 'object') {
    out.userProperties = Object.entries(userProperties as Record<string, string | string[]>)
      .flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map((v): [string, string] => [key, String(v)]))
  }
  return Object.keys(out).length === 0 ? null : out
}
