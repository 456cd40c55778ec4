import { inspect } from 'node:util'
import { ConveyorError } from '../core/errors.ts'
import { hasErrorCode, rootCauses } from '../kafka/connection.ts'
import type { Command, CommandIO } from './command.ts'
import { dlqCommand } from './commands/dlq.ts'
import { kafkaCommand } from './commands/kafka.ts'
import { lagCommand } from './commands/lag.ts'
import { produceCommand } from './commands/produce.ts'
import { registryCommand } from './commands/registry.ts'
import { runCommand } from './commands/run.ts'
import { schemasCommand } from './commands/schemas.ts'
import { tailCommand } from './commands/tail.ts'
import { topicsCommand } from './commands/topics.ts'
import { exitCodesHelp } from './options.ts'
import { registeredCommands } from './registry.ts'

/** The library's service command: `--help` lists it first, then the applications' commands. */
const serviceCommands: Command[] = [runCommand]

/** The library's tools, listed after the applications' commands. */
const toolCommands: Command[] = [
  produceCommand,
  tailCommand,
  dlqCommand,
  lagCommand,
  topicsCommand,
  schemasCommand,
  registryCommand,
  kafkaCommand
]

/** Every command of the library, in the order `conveyor --help` lists them. */
export const libraryCommands: readonly Command[] = [...serviceCommands, ...toolCommands]

/**
 * The commands of the command line: `run`, then the commands applications registered
 * (`registerCommands`), then the library's tools. An application's command may not take
 * the name of one of the library's.
 */
export function availableCommands(registered: readonly Command[] = registeredCommands()): Command[] {
  for (const command of registered) {
    if (libraryCommands.some((c) => c.name === command.name))
      throw new Error(`the command "${command.name}" is one of the library's and cannot be registered`)
  }
  return [...serviceCommands, ...registered, ...toolCommands]
}

const exitCodes = `${exitCodesHelp} \`kafka status\` exits 3 when a broker is not running.
CONVEYOR_DEBUG=1 prints the whole error after the line.`

function usage(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length))
  return [
    'Usage: conveyor <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `conveyor <command> --help` for the options of a command.',
    '',
    exitCodes
  ].join('\n')
}

/**
 * Runs the CLI and resolves with the process exit code: 0 done, 1 failed (one line on
 * `io.err` says why, never a stack trace: set CONVEYOR_DEBUG=1 for the whole error), 2 usage error.
 */
export async function main(
  argv: string[],
  io: CommandIO,
  commands: readonly Command[] = availableCommands()
): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h') {
    io.out(usage(commands))
    return name ? 0 : 2
  }
  const command = commands.find((c) => c.name === name)
  if (!command) {
    io.err(`unknown command "${name}"\n\n${usage(commands)}`)
    return 2
  }
  try {
    return await command.run(rest, io)
  } catch (error) {
    if (isUsageError(error)) {
      io.err(`conveyor ${name}: ${oneLine((error as Error).message)} (see \`conveyor ${name} --help\`)`)
      return 2
    }
    io.err(`conveyor ${name}: ${reason(error)}`)
    if (process.env.CONVEYOR_DEBUG === '1') io.err(inspect(error, { depth: 10 }))
    return 1
  }
}

/** The command line itself is wrong: an unknown option, a missing option value, a stray argument. */
function isUsageError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')
}

/**
 * Why a command failed, in a line. Conveyor's errors say it themselves; the Kafka client's
 * (`MultipleErrors: Listing topics failed.` wrapping the network error) and any other
 * error are their message followed by the causes at the bottom of them.
 */
export function reason(error: unknown): string {
  if (error instanceof ConveyorError) return error.message
  const message = error instanceof Error ? error.message : String(error)
  const unknownTopic = /^Unknown topic (.+?)\.?$/.exec(message)
  if (unknownTopic) return `topic ${unknownTopic[1]} does not exist`
  const code = (error as { code?: unknown } | null)?.code
  const kafka = typeof code === 'string' && code.startsWith('PLT_KFK_')
  if (kafka && hasErrorCode(error, 'PLT_KFK_AUTHENTICATION'))
    return 'Kafka rejected the connection: authentication failed, check the username and password'
  const causes = rootCauses(error).filter((m) => m !== message)
  const line = causes.length > 0 ? `${message.replace(/\.$/, '')}: ${causes.join('; ')}` : message
  return oneLine(kafka ? `Kafka: ${line}` : line)
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

if (import.meta.main) {
  // The executable is bin/conveyor.ts: it registers the applications' commands, then runs main.
  process.stderr.write('src/cli/main.ts is a module: run the command line with `node bin/conveyor.ts`\n')
  process.exitCode = 2
}
