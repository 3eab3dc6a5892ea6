/** What the limits refused or slowed, since the start; for metrics and tests. */
export interface LimitCounters {
  connectionsRefused: number
  oversizedPackets: number
  connectRefused: number
  publishesDropped: number
  subscriptionsRefused: number
  publishDelays: number
  outboundDropped: number
  slowConsumersDisconnected: number
}

export function newLimitCounters (): LimitCounters {
  return {
    connectionsRefused: 0,
    oversizedPackets: 0,
    connectRefused: 0,
    publishesDropped: 0,
    subscriptionsRefused: 0,
    publishDelays: 0,
    outboundDropped: 0,
    slowConsumersDisconnected: 0
  }
}
