import { CulexError, exitCodes, isCulexError } from '../errors.js'
import { version } from '../version.js'
import { storeCommand, storeHelp } from './store-command.js'
import { sessionsCommand, sessionsHelp } from './sessions-command.js'
import { startCommand, startHelp } from './start-command.js'
import { checkConfigCommand, checkConfigHelp } from './check-config-command.js'
import { passwdCommand, passwdHelp } from './passwd-command.js'
import { dlqCommand, dlqHelp } from './dlq-command.js'

interface Command {
  run: (args: string[]) => Promise<number>
  help: string
}

/** Every subcommand of `culex`; `start` is also what a bare `culex` runs. */
const commands: Record<string, Command> = {
  start: { run: startCommand, help: startHelp },
  'check-config': { run: checkConfigCommand, help: checkConfigHelp },
  passwd: { run: passwdCommand, help: passwdHelp },
  dlq: { run: dlqCommand, help: dlqHelp },
  store: { run: storeCommand, help: storeHelp },
  sessions: { run: sessionsCommand, help: sessionsHelp }
}

function usage (): string {
  return `culex ${version} — a durable MQTT 3.1.1 broker

Usage:
${Object.values(commands).map(c => '  ' + c.help.split('\n')[0]).join('\n')}
  culex --version
  culex <command> --help

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage.
`
}

export async function runCli (argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${version}\n`)
    return exitCodes.ok
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(usage())
    return exitCodes.ok
  }
  const named = first !== undefined && !first.startsWith('-')
  const command = named ? commands[first] : commands.start
  const args = named ? rest : argv
  try {
    if (command === undefined) throw new CulexError('ERR_USAGE', `unknown command "${first ?? ''}"; run culex --help`)
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(command.help + '\n')
      return exitCodes.ok
    }
    return await command.run(args)
  } catch (err) {
    return report(err)
  }
}

/** Mistakes in what the user configured or typed exit 2; everything else that stops culex exits 1. */
const configCodes = new Set<string>(['ERR_CONFIG_INVALID', 'ERR_CONFIG_FILE', 'ERR_USAGE', 'ERR_TLS_FILES', 'ERR_AUTH_FILE'])

/** A user's mistake gets one clear line per problem on stderr, never a stack trace. */
function report (err: unknown): number {
  if (isCulexError(err)) {
    process.stderr.write(`culex: ${err.message} [${err.code}]\n`)
    for (const d of err.details) process.stderr.write(`  - ${d}\n`)
    return configCodes.has(err.code) ? exitCodes.config : exitCodes.failure
  }
  const code = (err as { code?: string }).code
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`culex: ${(err as Error).message}; run culex --help [ERR_USAGE]\n`)
    return exitCodes.usage
  }
  process.stderr.write(`culex: unexpected error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  return exitCodes.failure
}
