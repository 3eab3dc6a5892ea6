import { readFile } from 'node:fs/promises'
import { expect, it } from 'vitest'
import { errorCodes } from '../../src/errors.js'

it('documents every error code in docs/errors.md, and no code that does not exist', async () => {
  const doc = await readFile('docs/errors.md', 'utf8')
  const documented = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map(m => m[1])
  expect(documented.sort()).toEqual(Object.keys(errorCodes).sort())
})
