import { createHmac, randomBytes } from 'node:crypto'
import type { AuthMethod } from '../../src/auth/methods.js'

/** HMAC-SHA-256 of the challenge under the user's key: what a client of the test method answers. */
export function challengeResponse (key: string, challenge: Buffer): Buffer {
  return createHmac('sha256', key).update(challenge).digest()
}

/**
 * A challenge-response method for the tests only, implementing the plug-in contract of src/auth/methods.ts as a
 * production method (SCRAM-SHA-256, say) would: the client names itself in the CONNECT's Authentication Data, is
 * sent a random challenge (AUTH 0x18), answers with challengeResponse, and is let in as that user with the final
 * data "welcome <user>". `keys`: user → key.
 */
export function challengeMethod (keys: Record<string, string>, name = 'TEST-CHALLENGE'): AuthMethod {
  return {
    name,
    start: () => {
      let user: string | undefined
      let challenge: Buffer | undefined
      return {
        step: async (data) => {
          if (user === undefined) {
            user = data?.toString() ?? ''
            if (keys[user] === undefined) return { outcome: 'failure', reason: 'unknown user' }
            challenge = randomBytes(16)
            return { outcome: 'continue', data: challenge }
          }
          if (data === undefined || challenge === undefined || !data.equals(challengeResponse(keys[user], challenge))) return { outcome: 'failure', reason: 'wrong answer to the challenge' }
          return { outcome: 'success', data: Buffer.from(`welcome ${user}`), username: user }
        }
      }
    }
  }
}
