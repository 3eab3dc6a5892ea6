import { escapeGlob } from './keys.js'

/**
 * The HSCAN glob of a wildcard filter: its literal levels before the first wildcard, then anything (without the
 * separator, so `a/#` also finds `a` itself; what else it finds is filtered by topicMatches). undefined for an exact filter.
 */
export function wildcardPrefix (filter: string): string | undefined {
  const levels = filter.split('/')
  const first = levels.findIndex(level => level === '+' || level === '#')
  if (first < 0) return undefined
  const literal = levels.slice(0, first).join('/')
  return `${escapeGlob(literal)}*`
}
