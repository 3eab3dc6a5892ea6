// qlobber ships no types; this covers the part of its aedes matcher the subscription index uses.
declare module 'qlobber/aedes/qlobber-sub.js' {
  interface QlobberSubValue {
    clientId: string
    topic: string
    qos: number
    rh?: number
    rap?: boolean
    nl?: boolean
  }
  interface QlobberSubOptions {
    separator?: string
    wildcard_one?: string
    wildcard_some?: string
    match_empty_levels?: boolean
    max_words?: number
  }
  class QlobberSub {
    constructor (options?: QlobberSubOptions)
    subscriptionsCount: number
    add (filter: string, value: QlobberSubValue): this
    remove (filter: string, value: { clientId: string, topic: string }): this
    match (topic: string): QlobberSubValue[]
  }
  export = QlobberSub
}
