import type { MqEmitter, Notify } from './aedes-internals.js'

/**
 * Topics whose listeners are kept. Past it the cache starts again empty: a broker whose publishers use more topics
 * than this between two subscription changes matches as it would without the cache, plus a lookup.
 */
const MAX_TOPICS = 10_000

/**
 * Keeps what aedes' mqemitter matched for each topic until its listeners change. mqemitter matches every emit's topic
 * anew in its Qlobber (splitting the topic into levels and walking the trie), though the listeners change only on
 * SUBSCRIBE, UNSUBSCRIBE, a connection's end and a shared group's changes, and most publishes repeat a few topics.
 * Every change of the matcher (add, remove, clear) empties the cache, so a match never sees listeners older than the
 * last change. A kept match is what Qlobber returned, which may be its own array of a filter's listeners (as
 * mqemitter already got it): mqemitter and dead-letter only read it, and it is dropped before Qlobber changes it.
 */
export function cacheMatches (mq: MqEmitter): void {
  const matcher = mq._matcher
  const match = matcher.match.bind(matcher)
  const add = matcher.add.bind(matcher)
  const remove = matcher.remove.bind(matcher)
  const clear = matcher.clear.bind(matcher)
  let kept = new Map<string, Notify[]>()
  // a subscription change empties it; a connection's end removes its filters one by one, so an empty one stays
  const forget = (): void => { if (kept.size > 0) kept = new Map() }
  matcher.match = (topic) => {
    let listeners = kept.get(topic)
    if (listeners === undefined) {
      listeners = match(topic)
      if (kept.size >= MAX_TOPICS) kept = new Map()
      kept.set(topic, listeners)
    }
    return listeners
  }
  matcher.add = (filter, notify) => {
    forget()
    return add(filter, notify)
  }
  matcher.remove = (filter, notify) => {
    forget()
    return remove(filter, notify)
  }
  matcher.clear = () => {
    forget()
    return clear()
  }
}
