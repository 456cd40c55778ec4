/** Where a command writes: data to `out`, progress and diagnostics to `err`. */
export interface CommandIO {
  out(text: string): void
  err(text: string): void
}

export interface Command {
  name: string
  summary: string
  /** Runs with the arguments after the command name; resolves with the exit code. */
  run(argv: string[], io: CommandIO): Promise<number>
}
