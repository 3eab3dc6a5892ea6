/**
 * The node flags the broker is meant to run with (src/cli/node-flags.ts) are on every entry point's command line:
 * V8 reads them at process start, so a place that forgot them would run the broker with V8's default young
 * generation and nothing else would notice. And the start-up check names a flag only when it was not given at all.
 */
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { missingNodeFlags, NODE_FLAGS } from '../../src/cli/node-flags.js'
import { repoRoot } from '../helpers/cli.js'

const read = async (file: string): Promise<string> => await readFile(path.join(repoRoot, file), 'utf8')

describe('the entry points start node with NODE_FLAGS', () => {
  it('the Dockerfile ENTRYPOINT', async () => {
    const entry = (await read('Dockerfile')).split('\n').find(l => l.startsWith('ENTRYPOINT '))
    expect(JSON.parse((entry ?? '').slice('ENTRYPOINT '.length))).toEqual(['node', ...NODE_FLAGS, 'dist/main.js'])
  })

  it('npm start', async () => {
    const pkg = JSON.parse(await read('package.json')) as { scripts: Record<string, string> }
    expect(pkg.scripts.start).toContain(`node ${NODE_FLAGS.join(' ')} dist/main.js`)
  })

  it('the culex command (the first line of src/main.ts, kept in dist/main.js)', async () => {
    expect((await read('src/main.ts')).split('\n')[0]).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`)
  })
})

describe('missingNodeFlags', () => {
  it('names each flag given neither on the command line nor in NODE_OPTIONS', () => {
    expect(missingNodeFlags([], '')).toEqual([...NODE_FLAGS])
    expect(missingNodeFlags(['--max-semi-space-size=32'], '')).toEqual([])
    expect(missingNodeFlags([], '--enable-source-maps  --max-semi-space-size=32')).toEqual([])
  })

  it('a flag given with another value, or with underscores as V8 allows, is not missing', () => {
    expect(missingNodeFlags(['--max-semi-space-size=16'], '')).toEqual([])
    expect(missingNodeFlags(['--max_semi_space_size=128'], '')).toEqual([])
    expect(missingNodeFlags(['--max-old-space-size=64'], '')).toEqual([...NODE_FLAGS])
  })
})
