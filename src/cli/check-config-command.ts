import { parseArgs } from 'node:util'
import { loadConfig } from '../config/load.js'
import { exitCodes } from '../errors.js'
import { assertAuthConfig, createAuthHooks } from '../auth/hooks.js'
import { createLogger } from '../log/logger.js'
import { configFlagOptions, configFlagsHelp, flagsToConfig } from './config-flags.js'

export const checkConfigHelp = `culex check-config [options]    validate the configuration and exit (0 = valid, 2 = invalid)

${configFlagsHelp}`

export async function checkConfigCommand (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: configFlagOptions, strict: true, allowPositionals: false })
  const { config, origins } = await loadConfig({ file: values.config, env: process.env, flags: flagsToConfig(values) })
  // The same start-up checks the broker makes: who may log in on each listener, and the password and ACL files.
  assertAuthConfig(config)
  const auth = await createAuthHooks({ ...config, auth: { ...config.auth, watchFiles: false } }, createLogger({ level: 'silent', format: 'json' }))
  auth.close()
  const changed = Object.entries(origins).filter(([, origin]) => origin !== 'default')
  process.stdout.write(`configuration is valid (${changed.length} setting${changed.length === 1 ? '' : 's'} changed from the defaults)\n`)
  for (const [key, origin] of changed) process.stdout.write(`  ${key} (from ${origin})\n`)
  return exitCodes.ok
}
