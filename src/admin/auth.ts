import { createHash, timingSafeEqual } from 'node:crypto'
import type http from 'node:http'

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/**
 * Checks the admin token: `Authorization: Bearer <token>`, or basic auth with the token as the password (any user
 * name), which is what Prometheus' `basic_auth` and `curl -u admin:<token>` send. An empty token lets every request in.
 */
export function tokenChecker (token: string): (req: http.IncomingMessage) => boolean {
  if (token === '') return () => true
  const expected = digest(token)
  const same = (given: string): boolean => timingSafeEqual(digest(given), expected)
  return req => {
    const header = req.headers.authorization ?? ''
    const space = header.indexOf(' ')
    if (space < 0) return false
    const scheme = header.slice(0, space).toLowerCase()
    const value = header.slice(space + 1).trim()
    if (scheme === 'bearer') return same(value)
    if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      return colon >= 0 && same(decoded.slice(colon + 1))
    }
    return false
  }
}
