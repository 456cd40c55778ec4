import { demoCommand, dispatcherCommand } from '../../apps/dispatcher/cli.ts'
import { ConveyorError } from '../core/errors.ts'
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

const commands: Command[] = [
  runCommand,
  dispatcherCommand,
  demoCommand,
  produceCommand,
  tailCommand,
  dlqCommand,
  lagCommand,
  topicsCommand,
  schemasCommand,
  registryCommand,
  kafkaCommand
]

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length))
  return [
    'Usage: conveyor <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `conveyor <command> --help` for the options of a command.'
  ].join('\n')
}

/** Runs the CLI and resolves with the process exit code. */
export async function main(argv: string[], io: CommandIO): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h') {
    io.out(usage())
    return name ? 0 : 2
  }
  const command = commands.find((c) => c.name === name)
  if (!command) {
    io.err(`unknown command "${name}"\n\n${usage()}`)
    return 2
  }
  try {
    return await command.run(rest, io)
  } catch (error) {
    if (
      error instanceof ConveyorError ||
      (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
    ) {
      io.err(`conveyor ${name}: ${(error as Error).message}`)
      return 1
    }
    throw error
  }
}

if (import.meta.main) {
  const io: CommandIO = {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`)
  }
  process.exitCode = await main(process.argv.slice(2), io)
}
