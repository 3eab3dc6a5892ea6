// qlobber ships no types; this covers the deduplicating matcher the cluster's route table uses.
declare module 'qlobber' {
  interface QlobberOptions {
    separator?: string
    wildcard_one?: string
    wildcard_some?: string
    match_empty_levels?: boolean
  }
  export class QlobberDedup<V> {
    constructor (options?: QlobberOptions)
    add (filter: string, value: V): this
    remove (filter: string, value?: V): this
    match (topic: string): Set<V>
    clear (): this
  }
}
