import { afterAll, afterEach, beforeAll } from 'vitest'
import { ensureBuilt, killAllChildren, removeDir, tempDataDir } from './cli.js'

/**
 * The hooks of an e2e file that runs the CLI: builds first, kills every child after each test, and removes the data
 * dirs it handed out at the end. Returns the function that hands out a fresh data dir.
 */
export function cliTestFile (): () => Promise<string> {
  const dirs: string[] = []
  beforeAll(async () => { await ensureBuilt() }, 180_000)
  afterEach(async () => { await killAllChildren() })
  afterAll(async () => {
    await killAllChildren()
    await Promise.all(dirs.map(removeDir))
  })
  return async () => {
    const dir = await tempDataDir()
    dirs.push(dir)
    return dir
  }
}
