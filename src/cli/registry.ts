import type { Command } from './command.ts'

const registered: Command[] = []

/**
 * Adds commands to the command line. Applications built on the library (the dispatcher,
 * the replicator, stream apps) register theirs from the executable's entry point, so
 * `src/cli/` never knows them; `conveyor --help` lists them after `run`, in the order
 * registered. A name can be registered once.
 */
export function registerCommands(...commands: Command[]): void {
  for (const command of commands) {
    if (registered.some((c) => c.name === command.name))
      throw new Error(`the command "${command.name}" is already registered`)
    registered.push(command)
  }
}

/** The commands registered so far, in the order registered. */
export function registeredCommands(): readonly Command[] {
  return registered
}
