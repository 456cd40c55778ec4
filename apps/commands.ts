/**
 * The applications' commands, in the order `conveyor --help` lists them (after `run`). An
 * application adds its commands here; the library's command line (`src/cli/`) never
 * imports an application. bin/conveyor.ts registers these.
 */
import type { Command } from '../src/cli/command.ts'
import { demoCommand, dispatcherCommand } from './dispatcher/cli.ts'
import { replicatorCommand } from './replicator/cli.ts'

export const applicationCommands: readonly Command[] = [dispatcherCommand, demoCommand, replicatorCommand]
